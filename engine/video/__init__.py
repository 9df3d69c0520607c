"""Video I/O with PyAV: read (``reader``), colour (``color``), encode (``writer``), decide what
happens to audio/subtitles (``streams``) and join everything into the output file (``mux``).

Times are ``fractions.Fraction`` seconds; frames travel as integer RGB (H, W, 3) tensors/arrays
(uint8 for 8-bit sources, 16-bit for deeper ones) between decoding and encoding.
"""
