"""The pipeline's domain code: trigger, run configuration, names, jobs, gate, registry, deployment."""
