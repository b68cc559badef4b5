"""A node that reads its messages and never answers, not even init."""

import sys

for _ in sys.stdin:
    pass
