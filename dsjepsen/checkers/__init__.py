"""Checkers: history -> CheckResult. They never touch nodes, SSH or templates."""
