"""A node that dies at startup (as a node with a missing dependency does)."""

import sys

sys.stderr.write("crash_at_start: cannot open /nonexistent/config\n")
sys.exit(3)
