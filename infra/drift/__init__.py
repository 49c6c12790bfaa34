"""The drift check's parts, one module per concern; infra/check_drift.py runs them all.

  report.py       the findings and the local accounts the templates are rendered with
  rust.py         what the checks read from the Rust sources, found anywhere under shared/
  functions.py    templates vs functions/: crates, build, environment, timeout
  stage_config.py STAGE_CONFIG vs the local stage config the emulator uses
  names.py        name defaults vs infra/names.json; the target roles' hosting scope
  pipeline.py     the pipeline vs infra/pipeline.json; the prod approval's evidence
  rules.py        rule targets, dead letters, EventInvokeConfig, the group-policy rule's scope
  artifacts.py    ListBucket for readers of the artifact bucket; the dev ArtifactKeyPattern
  samconfig.py    infra/samconfig.toml.example vs the templates' parameters
"""
