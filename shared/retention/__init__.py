"""Image retention: which tags and manifests of a repository go, by rules in the policy file.

`grammar` reads durations, acr purge's arguments and semantic versions (no imports from the rest of the
app, so `shared.policy` can use it); `rules` compiles the policy's retention section per repository;
`planner` decides (pure: every tag and manifest with its decision and the rule or protection that
decided it); `inventory` is the only part that talks to the registry and the verdict store;
`records` holds plans and run records (Table storage, as cleanup's); `service` plans and executes with
the last-moment re-read; `events` builds the CloudEvents. Nothing is imported here, so that importing
the grammar loads nothing else.
"""
