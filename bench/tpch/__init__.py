"""TPC-H on sparkctl DataFrames: data generator, queries, DuckDB reference, benchmark."""
