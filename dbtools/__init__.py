"""dbtools: back up, restore and migrate a Django database without fear."""

__version__ = "0.1.0"
