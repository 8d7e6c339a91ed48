"""Tests of trio_smtp.testing: the in-process SMTP/LMTP test server and its plugin."""
