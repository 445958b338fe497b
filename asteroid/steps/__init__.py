"""The ClearML tasks of the pipeline; each module's ``main()`` is what its top-level script runs."""
