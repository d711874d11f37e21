//! Containment: what "a run" is. Every process a job starts belongs to its run, also one
//! that calls setsid() or double-forks; stopping the run stops all of them, and what the run
//! used (CPU time, peak memory) is measured over all of them.
//!
//! Two mechanisms, chosen once at start (`[settings] containment`):
//! - a cgroup v2 per attempt, where the host lets this process create one;
//! - the process fallback, everywhere else.

pub(crate) mod limits;
