"""The full-size model families, one module each: Janus-Pro (`janus`) and OpenUni (`openuni`).

The ShapesWorld toy is a family too; it lives with its world in `recakit.toy`. Families are found
through `recakit.registry`."""
