"""cachewright's harness and CLI: runs the engines in front of a sample app and proves the policy."""
