#!/usr/bin/env python3
"""Prints the table `SCHEMA8_FRACTIONS` of schemas/src/histogram/bounds.rs: 2^(k/256) / 2 for
k = 0..255, each rounded correctly to the nearest float64 (computed with 60 significant
decimal digits, then converted once; Python's Decimal-to-float conversion rounds correctly).

    python3 schemas/scripts/bucket_bounds.py
"""
from decimal import Decimal, getcontext

getcontext().prec = 60

for k in range(256):
    exact = (Decimal(2) ** (Decimal(k) / Decimal(256))) / 2
    print(f"    {float(exact)!r},")
