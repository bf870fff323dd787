"""Test support for rayscale: real components started on this machine for the test tiers."""
