"""Command line, settings and the pipeline that ties the packages together."""
