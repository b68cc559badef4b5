"""Systems under test. Each target installs, starts and talks to one kind of system."""
