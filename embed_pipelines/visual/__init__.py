"""Page images: rendering, the ColPali-family model and encoder, and the region vectors that find candidates."""
