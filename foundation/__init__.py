"""What every layer stands on: the user-facing error, the plugin registry and spec parsing, seeding,
EOT/BPDA wrappers and parameter flags.  It imports none of ``attacks``, ``defenses`` or ``benchmark``."""
