"""The rules, one module per group (the id's prefix); report/catalog.py lists them."""
