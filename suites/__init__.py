"""Suite definitions as data (TOML). Shipped inside the package as ``bench.suites``."""
