"""Adapters: the only code that knows SDK models and ``azure.core`` errors."""
