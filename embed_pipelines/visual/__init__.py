"""Page images: rendering, the ColPali-family encoder, and the region vectors that find candidates."""
