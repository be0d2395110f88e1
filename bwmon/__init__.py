"""bwmon: which application is using my network, how much, and is it over its budget?"""

__version__ = "2.0.0.dev0"
