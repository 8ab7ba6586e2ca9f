"""printmesh coordinator: holds prints at planned layers, captures a grid of images, releases."""
