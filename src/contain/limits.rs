//! A run's resource limits written to its cgroup, and the out-of-memory verdict read back.
