//! `Hash` for [`RunPolicy`] and its parts that hold an `f64` (`Retry`, `Verify`), so that
//! [`super::Config::share`] can hash a policy directly. Each impl takes its struct apart
//! field by field: a new field is a compile error here until it is hashed. An `f64` hashes
//! by its bits, with `-0.0` as `0.0` (they are equal); a NaN equals nothing, so its hash
//! does not matter.
//!
//! Measured (callgrind, `cronwarden -c T check` of `bench/gen-table.py 10000`, see
//! BENCHMARKS.md): hashing each policy through its `Debug` text (`format!("{:?}")`, the code
//! this replaced) was 249 of the 880 million instructions of `check`.

use std::hash::{Hash, Hasher};

use super::job::{Retry, RunPolicy, Verify};

fn hash_f64<H: Hasher>(x: f64, state: &mut H) {
    let x = if x == 0.0 { 0.0 } else { x };
    x.to_bits().hash(state);
}

impl Hash for Retry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let Retry {
            retries,
            delay,
            backoff,
            max_delay,
            jitter,
            codes,
            on,
        } = self;
        retries.hash(state);
        delay.hash(state);
        hash_f64(*backoff, state);
        max_delay.hash(state);
        jitter.hash(state);
        codes.hash(state);
        on.hash(state);
    }
}

impl Hash for Verify {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let Verify {
            files,
            min_size,
            fresh,
            min_ratio,
            max_ratio,
        } = self;
        files.hash(state);
        min_size.hash(state);
        fresh.hash(state);
        for r in [min_ratio, max_ratio] {
            r.is_some().hash(state);
            if let Some(r) = r {
                hash_f64(*r, state);
            }
        }
    }
}

impl Hash for RunPolicy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let RunPolicy {
            shell,
            stdin,
            user,
            group,
            workdir,
            env,
            env_files,
            credentials,
            umask,
            nice,
            timeout,
            kill_grace,
            leftovers,
            limits,
            retry,
            success_codes,
            warning_codes,
            expect,
            output_limit,
            output_to_log,
            verify,
            overlap,
            catchup,
            depends_on_past,
            jitter,
            jitter_mode,
            trigger,
            alert,
            enabled,
            history_max_age,
            output_max_age,
        } = self;
        shell.hash(state);
        stdin.hash(state);
        user.hash(state);
        group.hash(state);
        workdir.hash(state);
        env.hash(state);
        env_files.hash(state);
        credentials.hash(state);
        umask.hash(state);
        nice.hash(state);
        timeout.hash(state);
        kill_grace.hash(state);
        leftovers.hash(state);
        limits.hash(state);
        retry.hash(state);
        success_codes.hash(state);
        warning_codes.hash(state);
        expect.hash(state);
        output_limit.hash(state);
        output_to_log.hash(state);
        verify.hash(state);
        overlap.hash(state);
        catchup.hash(state);
        depends_on_past.hash(state);
        jitter.hash(state);
        jitter_mode.hash(state);
        trigger.hash(state);
        alert.hash(state);
        enabled.hash(state);
        history_max_age.hash(state);
        output_max_age.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_zeros_hash_alike() {
        let mut a = 0u64;
        let mut b = 1u64;
        for (x, out) in [(0.0f64, &mut a), (-0.0f64, &mut b)] {
            let mut h = std::hash::DefaultHasher::new();
            hash_f64(x, &mut h);
            *out = h.finish();
        }
        assert_eq!(a, b);
    }
}
