"""Circuit discovery (acdc, eap, eap-ig, magnitude) graded against the exact census."""
