"""The pipeline layer: one module per stage (what it runs; its typed configuration is a section of the
one params root, ``cosec.pipeline.params.Params``) and the entry point every ``stages/*.py`` calls.

Nothing here knows DVC or Prefect: dvc.yaml calls the stage scripts, Prefect calls DVC. This package
imports nothing on its own, so a stage's imports are only its own (dvc.yaml's deps stay exact).
"""
