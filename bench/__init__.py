"""`make bench`: the surge benchmark of the whole pipeline, against a bare baseline.

See bench/README.md for what it measures and how to read the results."""
