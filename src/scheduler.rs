//! When each job is due: the daemon's clock logic, kept free of threads, processes and real
//! time so that tests can drive it with a fake clock through DST days, suspends and steps.
//!
//! The daemon calls [`Scheduler::observe`] each time it wakes, with the wall clock and how
//! far the monotonic and boot-time clocks advanced since the previous call. Each job's next
//! instant is computed from its previous one, never from "now", so a late wake-up neither
//! skips nor repeats an instant. Comparing the clocks tells a suspend (boot time advanced
//! more than monotonic time) from a step of the wall clock (the wall clock moved differently
//! from boot time); docs/schedules.md says what each of them means for a job. A step is
//! counted from the previous observation (the daemon wakes before every instant, so nothing
//! was due between that look and the step): instants from `previous wall + step` up to the
//! observation fell due in the new time and are handed out as usual.
//!
//! The per-wake cost does not grow with the table: the entries' next instants are kept in a
//! min-heap of (instant, entry), so finding the next wake-up is a look at its top and handing
//! out `k` due instants costs O(k log n). An entry whose next instant changes gets a new heap
//! item; the old one is recognised as stale when it comes to the top (its instant is no
//! longer the entry's) and dropped. Clock events (a step, a suspend, a freeze) and a reload
//! are rare and look at every entry (linear), then rebuild the heap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::config::{Catchup, Job};
use crate::schedule::Schedule;

/// Wall-clock moves smaller than this are noise (NTP slewing, a slow wake-up).
const STEP_TOLERANCE: SignedDuration = SignedDuration::from_secs(2);
/// A step at least this large is a correction: every job continues from the new time.
const CORRECTION: SignedDuration = SignedDuration::from_hours(3);
/// A daemon that looks at the clock more than this after an instant fell due (it wakes
/// before each) was not running: stopped (SIGSTOP), frozen, or starved of CPU. What fell
/// due meanwhile was missed, and follows `catchup` as after a suspend.
const FROZEN_AFTER: SignedDuration = SignedDuration::from_secs(5);
/// `catchup = "all"` runs at most this many missed instants (the most recent ones).
pub(crate) const CATCHUP_ALL_LIMIT: usize = 100;
/// At most this many instants of one job are dispatched by one observation.
const MAX_PER_OBSERVATION: usize = 1000;

/// Why an instant is dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// On time (or late by less than a clock event).
    Scheduled,
    /// Missed while the daemon was down, stopped or frozen, or the machine suspended
    /// (`catchup`).
    Catchup,
    /// Skipped by a forward step of the wall clock (a fixed-time job runs it once).
    ClockStep,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dispatch {
    pub job: String,
    pub scheduled: Timestamp,
    pub why: Why,
}

/// What the daemon saw when it woke.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation {
    /// The wall clock.
    pub wall: Timestamp,
    /// How far CLOCK_MONOTONIC advanced since the previous observation.
    pub mono: Duration,
    /// How far CLOCK_BOOTTIME advanced (it keeps counting during a suspend).
    pub boot: Duration,
    /// Instants up to `wall + ahead` are handed out now: the daemon gives each run to its
    /// thread a little before its instant (the run waits for the instant itself).
    pub ahead: Duration,
    /// How long since the previous observation the daemon was busy with work of its own (a
    /// reload of a big table): looking at the clock late because of it is not a freeze.
    pub busy: Duration,
}

/// An instant as whole seconds since the epoch, or none: 8 bytes where an
/// `Option<Timestamp>` takes 24 (issue 21: 100,000 idle jobs in 40 MB). Fire instants are
/// whole seconds ([`Schedule::next_after`]); a mark read from the state directory with a
/// fraction is rounded down, which compares the same with every whole-second instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Secs(i64);

impl Secs {
    /// No instant (`i64::MIN` seconds is far outside the range of a `Timestamp`).
    const NONE: Secs = Secs(i64::MIN);

    fn of(t: Option<Timestamp>) -> Secs {
        t.map_or(Secs::NONE, |t| {
            Secs(t.as_second() - i64::from(t.subsec_nanosecond() < 0))
        })
    }

    fn get(self) -> Option<Timestamp> {
        if self == Secs::NONE {
            return None;
        }
        Timestamp::from_second(self.0).ok()
    }
}

/// One job's clock: 32 bytes (`cargo test --lib scheduler::tests::sizes -- --ignored
/// --nocapture`).
struct Entry {
    /// Shared with the job of the table.
    schedule: Arc<Schedule>,
    next: Secs,
    /// The latest scheduled instant dispatched (persisted by the daemon before the job starts).
    mark: Secs,
    /// Where the job's name starts in the scheduler's `names`.
    name_at: u32,
    /// The name's length (a job name is at most 100 bytes; a longer one reads as "").
    name_len: u8,
    catchup: Catchup,
    wild: bool,
}

/// A job as the scheduler needs it.
pub(crate) struct Timed {
    pub name: String,
    pub schedule: Arc<Schedule>,
    pub catchup: Catchup,
    /// [`Timed::key`] of the schedule text and zone.
    pub key: u64,
}

impl Timed {
    /// The jobs of a table that fire on a calendar (enabled, with a cron or `@every` schedule).
    pub(crate) fn from_jobs<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Vec<Timed> {
        jobs.into_iter()
            .filter(|j| j.enabled)
            .filter_map(|j| {
                let s = j.schedule.as_ref().filter(|s| s.expr().is_calendar())?;
                Some(Timed {
                    name: j.name.to_string(),
                    schedule: Arc::clone(s),
                    catchup: j.catchup,
                    key: Timed::key_of(s),
                })
            })
            .collect()
    }

    /// [`Timed::key`] of a schedule's text and zone (an entry keeps no key of its own: it
    /// is made again from the entry's schedule when a reload compares it).
    pub(crate) fn key_of(s: &Schedule) -> u64 {
        Timed::key(s.text(), &crate::schedule::zone_name(s.time_zone()))
    }

    /// What identifies a job's clock across a reload: its schedule text and zone, hashed
    /// (SipHash with fixed keys; a collision, about 2^-64 per changed job, would keep the
    /// old clock).
    pub(crate) fn key(text: &str, zone: &str) -> u64 {
        let mut h = DefaultHasher::new();
        (text, zone).hash(&mut h);
        h.finish()
    }
}

pub(crate) struct Scheduler {
    entries: Vec<Entry>,
    /// Every entry's name, one after the other.
    names: String,
    /// (next instant, entry index) of every entry with a next instant; items whose instant
    /// is no longer their entry's are stale and skipped.
    /// Instants in whole seconds, as the entries' (16 bytes an item).
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    /// The wall clock at the previous observation.
    wall: Timestamp,
    /// Instants up to here were handed out (the previous observation's `wall + ahead`).
    horizon: Timestamp,
}

/// Instants of `s` in `(from, to]`, at most `limit + 1` of them (to tell "more than limit").
fn instants_between(s: &Schedule, from: Timestamp, to: Timestamp, limit: usize) -> Vec<Timestamp> {
    s.iter_after(from)
        .take_while(|t| *t <= to)
        .take(limit + 1)
        .collect()
}

impl Scheduler {
    /// Starts the clock at `now`. `marks` are the last dispatched instants from the state
    /// directory: instants after them up to `now` were missed while the daemon was down and
    /// follow each job's `catchup`. Returns the catch-up dispatches and notes for the log.
    pub(crate) fn start(
        jobs: Vec<Timed>,
        now: Timestamp,
        marks: &HashMap<String, Timestamp>,
    ) -> (Scheduler, Vec<Dispatch>, Vec<String>) {
        let mut s = Scheduler {
            entries: Vec::with_capacity(jobs.len()),
            // Room for every name, no more: grown by doubling, 100,000 names of about 6 bytes
            // took 1 MiB for 0.59 MB (massif).
            names: String::with_capacity(jobs.iter().map(|t| t.name.len()).sum()),
            heap: BinaryHeap::new(),
            wall: now,
            horizon: now,
        };
        let mut out = Vec::new();
        let mut notes = Vec::new();
        for t in jobs {
            let mark = marks.get(&t.name).copied();
            let mut e = s.entry(t, now, mark);
            if let Some(m) = mark {
                s.catch_up(
                    &mut e,
                    m,
                    now,
                    &mut out,
                    &mut notes,
                    "while the daemon was down",
                );
            }
            s.entries.push(e);
        }
        s.rebuild_heap();
        (s, out, notes)
    }

    /// A new entry; its name goes to `names`.
    fn entry(&mut self, t: Timed, now: Timestamp, mark: Option<Timestamp>) -> Entry {
        let wild = t.schedule.expr().is_wild();
        let from = mark.map_or(now, |m| m.max(now));
        let (name_at, name_len) = self.push_name(&t.name);
        Entry {
            next: Secs::of(t.schedule.next_after(from)),
            name_at,
            name_len,
            catchup: t.catchup,
            wild,
            schedule: t.schedule,
            mark: Secs::of(mark),
        }
    }

    /// Appends a job's name to `names`: where it starts and its length (`u32::MAX`, which
    /// reads as "", for a name that does not fit).
    fn push_name(&mut self, name: &str) -> (u32, u8) {
        let at = u32::try_from(self.names.len()).ok();
        match (at, u8::try_from(name.len()).ok()) {
            (Some(at), Some(len)) => {
                self.names.push_str(name);
                (at, len)
            }
            _ => (u32::MAX, 0),
        }
    }

    /// The name of the job of `e`.
    fn name<'a>(&'a self, e: &Entry) -> &'a str {
        name_in(&self.names, e)
    }

    /// Every entry with a next instant in the heap, and nothing else (after an event that
    /// moved many of them).
    fn rebuild_heap(&mut self) {
        let mut items = Vec::with_capacity(self.entries.len());
        items.extend(self.entries.iter().enumerate().filter_map(|(i, e)| {
            let i = u32::try_from(i).ok()?;
            (e.next != Secs::NONE).then_some(Reverse((e.next.0, i)))
        }));
        self.heap = BinaryHeap::from(items);
    }

    /// Applies `catchup` to the instants of `e` in `(from, to]`.
    fn catch_up(
        &self,
        e: &mut Entry,
        from: Timestamp,
        to: Timestamp,
        out: &mut Vec<Dispatch>,
        notes: &mut Vec<String>,
        when: &str,
    ) {
        let limit = match e.catchup {
            Catchup::All => CATCHUP_ALL_LIMIT,
            _ => 1,
        };
        let missed = instants_between(&e.schedule, from, to, limit.max(MAX_PER_OBSERVATION));
        if missed.is_empty() {
            return;
        }
        let name = self.name(e);
        let n = missed.len();
        let more = if n > MAX_PER_OBSERVATION {
            "more than "
        } else {
            ""
        };
        match e.catchup {
            Catchup::None => notes.push(format!(
                "job {}: {more}{n} run(s) missed {when}, not caught up (catchup = \"none\")",
                name
            )),
            Catchup::Once => {
                let last = missed[n.min(MAX_PER_OBSERVATION) - 1];
                let last = if n > MAX_PER_OBSERVATION {
                    e.schedule
                        .iter_after(last)
                        .take_while(|t| *t <= to)
                        .last()
                        .unwrap_or(last)
                } else {
                    last
                };
                notes.push(format!(
                    "job {}: {more}{n} run(s) missed {when}; running once for {last}",
                    name
                ));
                dispatch(name, e, last, Why::Catchup, out);
            }
            Catchup::All => {
                let keep: Vec<Timestamp> = if n > CATCHUP_ALL_LIMIT {
                    let all: Vec<Timestamp> = e
                        .schedule
                        .iter_after(from)
                        .take_while(|t| *t <= to)
                        .collect();
                    notes.push(format!(
                        "job {}: {} runs missed {when}; catchup = \"all\" runs only the last {}",
                        name,
                        all.len(),
                        CATCHUP_ALL_LIMIT
                    ));
                    all[all.len() - CATCHUP_ALL_LIMIT..].to_vec()
                } else {
                    notes.push(format!(
                        "job {}: {n} run(s) missed {when}; running each",
                        name
                    ));
                    missed
                };
                for t in keep {
                    dispatch(name, e, t, Why::Catchup, out);
                }
            }
        }
    }

    /// The earliest instant any job is due, if any: the heap's top (never stale between
    /// calls, see [`Scheduler::settle`]).
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        self.heap
            .peek()
            .and_then(|Reverse((t, _))| Timestamp::from_second(*t).ok())
    }

    /// Drops the stale items at the top of the heap, and rebuilds it when stale items make
    /// up more than half of it.
    fn settle(&mut self) {
        while let Some(Reverse((t, i))) = self.heap.peek() {
            let e = self.entries.get(*i as usize);
            if e.is_some_and(|e| e.next == Secs(*t)) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.entries.len() + 64 {
            self.rebuild_heap();
        }
    }

    /// Every job's next instant.
    pub(crate) fn next_runs(&self) -> impl Iterator<Item = (&str, Option<Timestamp>)> {
        self.entries.iter().map(|e| (self.name(e), e.next.get()))
    }

    /// The next instant of one job.
    #[cfg(test)]
    pub(crate) fn next_of(&self, job: &str) -> Option<Timestamp> {
        self.entries
            .iter()
            .find(|e| self.name(e) == job)?
            .next
            .get()
    }

    /// Advances the clock to an observation; returns what is due, in order, and notes.
    pub(crate) fn observe(&mut self, obs: Observation) -> (Vec<Dispatch>, Vec<String>) {
        let (prev, done) = (self.wall, self.horizon);
        let wall = obs.wall;
        let ahead = SignedDuration::try_from(obs.ahead).unwrap_or(SignedDuration::ZERO);
        let limit = wall.checked_add(ahead).unwrap_or(wall);
        self.wall = wall;
        let boot = SignedDuration::try_from(obs.boot).unwrap_or(SignedDuration::MAX);
        let expected = prev.checked_add(boot).unwrap_or(wall);
        let step = wall.duration_since(expected);
        let suspended = obs.boot.saturating_sub(obs.mono) > Duration::from_secs(2);
        let mut out = Vec::new();
        let mut notes = Vec::new();
        if step.abs() >= CORRECTION || step <= -STEP_TOLERANCE {
            self.stepped(prev, done, step, wall, &mut out, &mut notes);
            self.horizon = limit;
        } else if suspended {
            // Instants that fell due before the suspend were handed out before it (the daemon
            // wakes before each); those during it (and a step forward with it) follow
            // `catchup`.
            let what = format!("while the machine was suspended ({})", fmt_signed(boot));
            self.missed(done, wall, &what, &mut out, &mut notes);
            self.horizon = limit.max(done);
        } else if step >= STEP_TOLERANCE {
            self.stepped(prev, done, step, wall, &mut out, &mut notes);
            self.horizon = limit;
        } else if let Some(late) = self
            .late_by(wall)
            .map(|l| l - SignedDuration::try_from(obs.busy).unwrap_or(SignedDuration::ZERO))
            .filter(|l| *l > FROZEN_AFTER)
        {
            // The clocks agree but the daemon woke long after an instant: it was stopped or
            // frozen (SIGSTOP, a frozen cgroup) or starved. What fell due since its previous
            // look was missed, as during a suspend.
            let what = format!(
                "while the daemon could not run (stopped, frozen or starved: it woke {} late)",
                fmt_signed(late)
            );
            self.missed(done, wall, &what, &mut out, &mut notes);
            self.horizon = limit.max(done);
        } else {
            self.horizon = limit.max(done);
        }
        self.due(limit, &mut out);
        self.settle();
        out.sort_by_key(|d| d.scheduled);
        (out, notes)
    }

    /// How long ago the earliest instant that is due and not handed out fell due.
    /// When the earliest next instant of all is less than [`FROZEN_AFTER`] ago (the usual
    /// wake-up, before it), that figure is returned: an upper bound, enough for the caller's
    /// test. Only a wake-up later than that looks at every entry.
    fn late_by(&self, wall: Timestamp) -> Option<SignedDuration> {
        let earliest = wall.duration_since(self.next_due()?);
        if earliest <= FROZEN_AFTER {
            return Some(earliest);
        }
        self.entries
            .iter()
            .filter(|e| e.next != Secs::NONE && (e.wild || e.next > e.mark))
            .map(|e| e.next)
            .min()
            .and_then(Secs::get)
            .map(|n| wall.duration_since(n))
    }

    /// Hands out every instant up to `limit` (fixed-time jobs never one already dispatched),
    /// in table order (as a scan of the table would), from the entries at the top of the heap.
    fn due(&mut self, limit: Timestamp, out: &mut Vec<Dispatch>) {
        let mut hits: Vec<u32> = Vec::new();
        let top = Secs::of(Some(limit)).0;
        while let Some(Reverse((t, i))) = self.heap.peek().copied() {
            if t > top {
                break;
            }
            self.heap.pop();
            if self
                .entries
                .get(i as usize)
                .is_some_and(|e| e.next == Secs(t))
            {
                hits.push(i);
            }
        }
        hits.sort_unstable();
        hits.dedup();
        let Scheduler {
            entries,
            names,
            heap,
            ..
        } = self;
        for i in hits {
            let Some(e) = entries.get_mut(i as usize) else {
                continue;
            };
            let mut count = 0;
            while let Some(n) = e.next.get().filter(|n| *n <= limit) {
                if count >= MAX_PER_OBSERVATION {
                    e.next = Secs::of(e.schedule.next_after(limit));
                    break;
                }
                if e.wild || e.next > e.mark {
                    dispatch(name_in(names, e), e, n, Why::Scheduled, out);
                    count += 1;
                }
                e.next = Secs::of(e.schedule.next_after(n));
            }
            if e.next != Secs::NONE {
                heap.push(Reverse((e.next.0, i)));
            }
        }
    }

    /// Instants in `(done, to]` the daemon could not run on time: each job's `catchup`
    /// decides. Every job then continues after `to`.
    fn missed(
        &mut self,
        done: Timestamp,
        to: Timestamp,
        what: &str,
        out: &mut Vec<Dispatch>,
        notes: &mut Vec<String>,
    ) {
        for i in 0..self.entries.len() {
            let mut e = std::mem::replace(&mut self.entries[i], placeholder());
            // A fixed-time job never runs an instant again (after a step back).
            let from = match e.mark.get() {
                Some(m) if !e.wild => m.max(done),
                _ => done,
            };
            if from < to {
                self.catch_up(&mut e, from, to, out, notes, what);
            }
            e.next = Secs::of(e.schedule.next_after(to.max(done)));
            self.entries[i] = e;
        }
        self.rebuild_heap();
    }

    /// A step of the wall clock, noticed at `wall`, by `step` since the previous look at
    /// `prev`. The daemon notices a step only when it wakes and cannot tell when during its
    /// sleep the clock moved, so it counts the step from its previous look: it had planned
    /// to wake before the earliest instant of any job, so nothing fell due between that look
    /// and the step. The new time starts at `landing = prev + step`: instants after it are
    /// due as usual (a wild job continues from the new time, and a fixed-time job runs
    /// nothing already run); instants from `done` to `landing` were jumped over (forward) or
    /// come round again (back), per the rules in docs/schedules.md. Every decision is a note.
    fn stepped(
        &mut self,
        prev: Timestamp,
        done: Timestamp,
        step: SignedDuration,
        wall: Timestamp,
        out: &mut Vec<Dispatch>,
        notes: &mut Vec<String>,
    ) {
        let landing = prev.checked_add(step).unwrap_or(wall);
        let correction = step.abs() >= CORRECTION;
        let when = format!(
            "noticed at {wall}; counted from the previous look at the clock, so instants after \
             {landing} are due in the new time"
        );
        notes.push(if correction {
            format!(
                "the wall clock moved by {} ({when}): treated as a correction, every job \
                 continues from the new time; nothing jumped over runs and no fixed-time job \
                 runs an instant again",
                fmt_signed(step)
            )
        } else if step > SignedDuration::ZERO {
            format!(
                "the wall clock stepped forward by {} ({when}): fixed-time jobs run once for \
                 instants jumped over, wild jobs continue from the new time",
                fmt_signed(step)
            )
        } else {
            format!(
                "the wall clock stepped back by {} ({when}): fixed-time jobs do not repeat \
                 instants already run, wild jobs continue from the new time",
                fmt_signed(-step)
            )
        });
        let names = &self.names;
        for e in &mut self.entries {
            let name = name_in(names, e);
            if step > SignedDuration::ZERO {
                Self::jumped(name, e, done, landing, correction, out, notes);
            } else if let Some(m) = e.mark.get().filter(|m| !e.wild && *m > landing) {
                notes.push(format!(
                    "job {name}: the clock shows instants up to {m} again; they already ran \
                     and do not run again"
                ));
            }
            e.next = Secs::of(e.schedule.next_after(landing));
        }
        self.rebuild_heap();
    }

    /// The instants of `e` a forward step jumped over, `(done, landing]`: a fixed-time job
    /// runs once for the latest of them (not after a correction); a wild job none.
    fn jumped(
        name: &str,
        e: &mut Entry,
        done: Timestamp,
        landing: Timestamp,
        correction: bool,
        out: &mut Vec<Dispatch>,
        notes: &mut Vec<String>,
    ) {
        let mark = e.mark.get().filter(|_| !e.wild);
        let skipped: Vec<Timestamp> =
            instants_between(&e.schedule, done, landing, MAX_PER_OBSERVATION)
                .into_iter()
                .filter(|t| mark.is_none_or(|m| *t > m))
                .collect();
        let (Some(first), Some(last)) = (skipped.first().copied(), skipped.last().copied()) else {
            return;
        };
        let n = if skipped.len() > MAX_PER_OBSERVATION {
            format!("more than {MAX_PER_OBSERVATION}")
        } else {
            skipped.len().to_string()
        };
        let span = if first == last {
            format!("{first}")
        } else {
            format!("{first} to {last}")
        };
        if correction || e.wild {
            let why = if correction {
                "the step is a correction"
            } else {
                "a wild job continues from the new time"
            };
            notes.push(format!(
                "job {}: {n} instant(s) jumped over ({span}); not run: {why}",
                name
            ));
        } else {
            // Like a DST gap: a fixed-time job whose instants were skipped runs once. Never
            // an instant already dispatched (a step back, then forward again).
            let last = skipped[skipped.len().min(MAX_PER_OBSERVATION) - 1];
            notes.push(format!(
                "job {}: {n} instant(s) jumped over ({span}); running once for {last}",
                name
            ));
            dispatch(name, e, last, Why::ClockStep, out);
        }
    }

    /// Takes a new table: jobs whose schedule and zone did not change keep their clock;
    /// new or changed jobs start from now (no catch-up); removed jobs are dropped.
    pub(crate) fn reload(&mut self, jobs: Vec<Timed>, now: Timestamp) {
        let old_names = std::mem::replace(
            &mut self.names,
            String::with_capacity(jobs.iter().map(|t| t.name.len()).sum()),
        );
        let mut old: HashMap<&str, Entry> = self
            .entries
            .drain(..)
            .map(|e| (name_in(&old_names, &e), e))
            .collect();
        self.entries.reserve(jobs.len());
        for t in jobs {
            let entry = match old.remove(t.name.as_str()) {
                Some(mut e) if Timed::key_of(&e.schedule) == t.key => {
                    e.catchup = t.catchup;
                    e.schedule = t.schedule;
                    (e.name_at, e.name_len) = self.push_name(&t.name);
                    e
                }
                Some(e) => self.entry(t, now, e.mark.get()),
                None => self.entry(t, now, None),
            };
            self.entries.push(entry);
        }
        self.rebuild_heap();
    }

    /// The jobs and their next instants (for status lines).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn placeholder() -> Entry {
    Entry {
        name_at: 0,
        name_len: 0,
        schedule: Arc::new(Schedule::new(
            crate::schedule::Expr::Manual,
            jiff::tz::TimeZone::UTC,
        )),
        catchup: Catchup::None,
        wild: false,
        next: Secs::NONE,
        mark: Secs::NONE,
    }
}

/// The name of the job of `e` in `names`.
fn name_in<'a>(names: &'a str, e: &Entry) -> &'a str {
    let (at, len) = (e.name_at as usize, usize::from(e.name_len));
    names.get(at..at + len).unwrap_or("")
}

fn dispatch(name: &str, e: &mut Entry, at: Timestamp, why: Why, out: &mut Vec<Dispatch>) {
    e.mark = e.mark.max(Secs::of(Some(at)));
    out.push(Dispatch {
        job: name.to_string(),
        scheduled: at,
        why,
    });
}

fn fmt_signed(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let sign = if secs < 0 { "-" } else { "" };
    format!(
        "{sign}{}",
        crate::units::format_duration(Duration::from_secs(secs.unsigned_abs()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Expr;
    use jiff::tz::TimeZone;

    fn timed(name: &str, expr: &str, tz: &str, catchup: Catchup) -> Timed {
        Timed {
            name: name.to_string(),
            schedule: Arc::new(
                Schedule::new(
                    Expr::parse(expr).expect("expr"),
                    TimeZone::get(tz).expect("zone"),
                )
                .with_text(expr),
            ),
            catchup,
            key: Timed::key(expr, tz),
        }
    }

    /// What each job keeps in memory stays as small as issue 21 made it (100,000 idle jobs
    /// in under 40 MB rests on these sizes); `--nocapture` prints them.
    #[test]
    fn per_job_sizes_stay_small() {
        use std::mem::size_of;
        let sizes = [
            ("Job", size_of::<Job>(), 80),
            ("scheduler entry", size_of::<Entry>(), 32),
            ("an instant", size_of::<Secs>(), 8),
            ("heap item", size_of::<Reverse<(i64, u32)>>(), 16),
            ("Schedule", size_of::<Schedule>(), 56),
            ("CronSpec", size_of::<crate::schedule::CronSpec>(), 32),
            ("CommandLine", size_of::<crate::config::CommandLine>(), 16),
        ];
        for (what, size, most) in sizes {
            println!("{what}: {size} B (at most {most})");
            assert!(size <= most, "{what} is {size} bytes, more than {most}");
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    /// A fake clock: wall, monotonic and boot time advance together unless told otherwise.
    struct Fake {
        s: Scheduler,
        wall: Timestamp,
        /// What the next observation says the daemon was busy with.
        busy: Duration,
        log: Vec<(String, Timestamp, Why)>,
        notes: Vec<String>,
    }

    impl Fake {
        fn new(jobs: Vec<Timed>, start: &str, marks: &[(&str, &str)]) -> Fake {
            let marks = marks.iter().map(|(j, t)| (j.to_string(), ts(t))).collect();
            let (s, d, notes) = Scheduler::start(jobs, ts(start), &marks);
            let mut f = Fake {
                s,
                wall: ts(start),
                busy: Duration::ZERO,
                log: Vec::new(),
                notes,
            };
            f.record(d);
            f
        }

        fn record(&mut self, d: Vec<Dispatch>) {
            self.log
                .extend(d.into_iter().map(|d| (d.job, d.scheduled, d.why)));
        }

        /// Sleeps like the daemon: until the next instant or at most a minute.
        fn run_until(&mut self, end: &str) {
            let end = ts(end);
            while self.wall < end {
                let mut wake = self.wall + SignedDuration::from_secs(60);
                if let Some(n) = self.s.next_due() {
                    wake = wake.min(n.max(self.wall));
                }
                let wake = wake.min(end);
                let dt = Duration::try_from(wake.duration_since(self.wall)).expect("forward");
                self.observe(wake, dt, dt);
                if dt.is_zero() {
                    // Due now: the observation above dispatched it; move on by a second.
                    let one = Duration::from_secs(1);
                    let w = self.wall + SignedDuration::from_secs(1);
                    self.observe(w, one, one);
                }
            }
        }

        fn observe(&mut self, wall: Timestamp, mono: Duration, boot: Duration) {
            self.wall = wall;
            let (ahead, busy) = (Duration::ZERO, std::mem::take(&mut self.busy));
            let (d, notes) = self.s.observe(Observation {
                wall,
                mono,
                boot,
                ahead,
                busy,
            });
            self.notes.extend(notes);
            self.record(d);
        }

        fn instants(&self, job: &str) -> Vec<Timestamp> {
            self.log
                .iter()
                .filter(|(j, _, _)| j == job)
                .map(|(_, t, _)| *t)
                .collect()
        }
    }

    #[test]
    fn spring_forward_runs_a_fixed_time_job_once_after_the_gap() {
        let mut f = Fake::new(
            vec![
                timed("fixed", "30 2 * * *", "America/New_York", Catchup::None),
                timed("wild", "*/30 * * * *", "America/New_York", Catchup::None),
            ],
            "2026-03-08T05:00:00Z",
            &[],
        );
        f.run_until("2026-03-08T09:00:00Z");
        assert_eq!(f.instants("fixed"), [ts("2026-03-08T07:00:00Z")]);
        // 00:30, 01:00, 01:30 EST, then 03:00, 03:30, 04:00 EDT: 02:xx does not exist.
        assert_eq!(
            f.instants("wild"),
            [
                ts("2026-03-08T05:30:00Z"),
                ts("2026-03-08T06:00:00Z"),
                ts("2026-03-08T06:30:00Z"),
                ts("2026-03-08T07:00:00Z"),
                ts("2026-03-08T07:30:00Z"),
                ts("2026-03-08T08:00:00Z"),
                ts("2026-03-08T08:30:00Z"),
                ts("2026-03-08T09:00:00Z"),
            ]
        );
    }

    #[test]
    fn fall_back_runs_fixed_once_and_wild_in_both_passes() {
        let mut f = Fake::new(
            vec![
                timed("fixed", "30 1 * * *", "America/New_York", Catchup::None),
                timed("wild", "*/30 1 * * *", "America/New_York", Catchup::None),
            ],
            "2026-11-01T04:00:00Z",
            &[],
        );
        f.run_until("2026-11-01T08:00:00Z");
        assert_eq!(f.instants("fixed"), [ts("2026-11-01T05:30:00Z")]);
        assert_eq!(
            f.instants("wild"),
            [
                ts("2026-11-01T05:00:00Z"),
                ts("2026-11-01T05:30:00Z"),
                ts("2026-11-01T06:00:00Z"),
                ts("2026-11-01T06:30:00Z"),
            ]
        );
    }

    #[test]
    fn restart_catches_up_per_policy_and_never_repeats_an_instant() {
        let jobs = || {
            vec![
                timed("none", "0 * * * *", "UTC", Catchup::None),
                timed("once", "0 * * * *", "UTC", Catchup::Once),
                timed("all", "0 * * * *", "UTC", Catchup::All),
            ]
        };
        // Down from 10:00:30 to 13:20: 11:00, 12:00 and 13:00 were missed.
        let marks = [
            ("none", "2026-01-01T10:00:00Z"),
            ("once", "2026-01-01T10:00:00Z"),
            ("all", "2026-01-01T10:00:00Z"),
        ];
        let f = Fake::new(jobs(), "2026-01-01T13:20:00Z", &marks);
        assert!(f.instants("none").is_empty());
        assert_eq!(f.instants("once"), [ts("2026-01-01T13:00:00Z")]);
        assert_eq!(
            f.instants("all"),
            [
                ts("2026-01-01T11:00:00Z"),
                ts("2026-01-01T12:00:00Z"),
                ts("2026-01-01T13:00:00Z")
            ]
        );
        assert!(f.log.iter().all(|(_, _, w)| *w == Why::Catchup));
        assert!(
            f.notes
                .iter()
                .any(|n| n.contains("job none: 3 run(s) missed"))
        );
        // Restarted within the same second as a dispatch: nothing runs twice.
        let f2 = Fake::new(jobs(), "2026-01-01T10:00:00.5Z", &marks);
        assert!(f2.log.is_empty());
        assert_eq!(f2.s.next_of("once"), Some(ts("2026-01-01T11:00:00Z")));
    }

    #[test]
    fn catchup_all_is_bounded() {
        let f = Fake::new(
            vec![timed("m", "* * * * *", "UTC", Catchup::All)],
            "2026-01-02T00:00:00Z",
            &[("m", "2026-01-01T00:00:00Z")],
        );
        let got = f.instants("m");
        assert_eq!(got.len(), CATCHUP_ALL_LIMIT);
        assert_eq!(got.last(), Some(&ts("2026-01-02T00:00:00Z")));
        assert!(f.notes[0].contains("1440 runs missed"), "{:?}", f.notes);
    }

    #[test]
    fn suspend_follows_catchup() {
        for (policy, want) in [(Catchup::None, 0), (Catchup::Once, 1), (Catchup::All, 5)] {
            let mut f = Fake::new(
                vec![timed("h", "0 * * * *", "UTC", policy)],
                "2026-01-01T09:59:00Z",
                &[],
            );
            f.run_until("2026-01-01T10:00:30Z");
            assert_eq!(f.instants("h"), [ts("2026-01-01T10:00:00Z")]);
            // Suspended for 5 hours: the monotonic clock saw 30 s of it.
            f.observe(
                ts("2026-01-01T15:01:00Z"),
                Duration::from_secs(30),
                Duration::from_secs(5 * 3600 + 30),
            );
            let after: Vec<_> = f.log[1..].iter().map(|(_, t, w)| (*t, *w)).collect();
            assert_eq!(after.len(), want, "{policy:?}: {after:?}");
            assert!(after.iter().all(|(_, w)| *w == Why::Catchup));
            if want > 0 {
                assert_eq!(after.last().map(|a| a.0), Some(ts("2026-01-01T15:00:00Z")));
            }
            assert_eq!(f.s.next_of("h"), Some(ts("2026-01-01T16:00:00Z")));
        }
    }

    /// Issue 15, item 6: after the daemon was stopped (SIGSTOP) for 17 s, the ticks it missed
    /// were handed out as ordinary late ticks (which coalesced into one run, or were
    /// skipped by it): `catchup` was ignored. A freeze is treated like a suspend.
    #[test]
    fn a_frozen_daemon_follows_catchup_for_what_it_missed() {
        for (policy, want) in [(Catchup::None, 0), (Catchup::Once, 1), (Catchup::All, 8)] {
            let mut f = Fake::new(
                vec![timed("s", "*/2 * * * * *", "UTC", policy)],
                "2026-01-01T10:00:00Z",
                &[],
            );
            f.run_until("2026-01-01T10:00:02.5Z");
            assert_eq!(f.instants("s"), [ts("2026-01-01T10:00:02Z")]);
            // Stopped from 10:00:02.5 to 10:00:19.5: the clocks all ran on.
            let d = Duration::from_secs(17);
            f.observe(ts("2026-01-01T10:00:19.5Z"), d, d);
            let after: Vec<_> = f.log[1..].iter().map(|(_, t, w)| (*t, *w)).collect();
            assert_eq!(after.len(), want, "{policy:?}: {after:?}");
            assert!(after.iter().all(|(_, w)| *w == Why::Catchup), "{after:?}");
            if want > 0 {
                assert_eq!(after.last().map(|a| a.0), Some(ts("2026-01-01T10:00:18Z")));
            }
            assert!(
                f.notes
                    .iter()
                    .any(|n| n.contains("missed while the daemon could not run")),
                "{policy:?}: {:?}",
                f.notes
            );
            assert_eq!(f.s.next_of("s"), Some(ts("2026-01-01T10:00:20Z")));
        }
        // Late as long because the daemon itself was busy (a reload of a big table): not a
        // freeze, the ticks run late as scheduled.
        let mut f = Fake::new(
            vec![timed("s", "*/2 * * * * *", "UTC", Catchup::None)],
            "2026-01-01T10:00:00Z",
            &[],
        );
        f.run_until("2026-01-01T10:00:02.5Z");
        f.busy = Duration::from_secs(16);
        let d = Duration::from_secs(17);
        f.observe(ts("2026-01-01T10:00:19.5Z"), d, d);
        assert_eq!(f.instants("s").len(), 9, "{:?}", f.log);
        assert!(f.log.iter().all(|(_, _, w)| *w == Why::Scheduled));
    }

    #[test]
    fn forward_step_runs_skipped_fixed_time_jobs_once() {
        let mut f = Fake::new(
            vec![
                timed("fixed", "15,45 3 * * *", "UTC", Catchup::None),
                timed("wild", "*/10 * * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T02:58:00Z",
            &[],
        );
        // One minute of real time passes, the wall clock jumps an hour.
        f.observe(
            ts("2026-01-01T03:59:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert_eq!(f.instants("fixed"), [ts("2026-01-01T03:45:00Z")]);
        assert_eq!(f.log[0].2, Why::ClockStep);
        assert!(f.instants("wild").is_empty());
        assert_eq!(f.s.next_of("wild"), Some(ts("2026-01-01T04:00:00Z")));
        assert!(
            f.notes[0].starts_with("the wall clock stepped forward by 1h"),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn backward_step_never_reruns_a_fixed_time_instant() {
        let mut f = Fake::new(
            vec![
                timed("fixed", "30 3 * * *", "UTC", Catchup::None),
                timed("wild", "*/30 * * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T03:00:00Z",
            &[],
        );
        f.run_until("2026-01-01T03:40:00Z");
        assert_eq!(f.instants("fixed"), [ts("2026-01-01T03:30:00Z")]);
        // The clock is set back an hour.
        f.observe(
            ts("2026-01-01T02:41:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        f.run_until("2026-01-01T04:10:00Z");
        assert_eq!(f.instants("fixed"), [ts("2026-01-01T03:30:00Z")]);
        // Wild jobs follow the clock: 03:00 and 03:30 come round again.
        assert_eq!(
            f.instants("wild"),
            [
                ts("2026-01-01T03:30:00Z"),
                ts("2026-01-01T03:00:00Z"),
                ts("2026-01-01T03:30:00Z"),
                ts("2026-01-01T04:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_step_back_then_forward_again_reruns_nothing() {
        let mut f = Fake::new(
            vec![
                timed("fixed", "30 3 * * *", "UTC", Catchup::None),
                timed("wild", "*/30 * * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T03:00:00Z",
            &[],
        );
        f.run_until("2026-01-01T03:40:00Z");
        // Set back an hour by mistake...
        f.observe(
            ts("2026-01-01T02:41:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        f.run_until("2026-01-01T02:50:00Z");
        // ...and put right ten minutes later: forward by the same hour, over 03:30 again.
        f.observe(
            ts("2026-01-01T03:51:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        f.run_until("2026-01-01T04:10:00Z");
        assert_eq!(f.instants("fixed"), [ts("2026-01-01T03:30:00Z")]);
        assert!(
            f.log.iter().all(|(_, _, w)| *w != Why::ClockStep),
            "{:?}",
            f.log
        );
        // Wild jobs follow the clock (no step dispatch for them).
        assert_eq!(
            f.instants("wild"),
            [ts("2026-01-01T03:30:00Z"), ts("2026-01-01T04:00:00Z")]
        );
    }

    /// Issue 15, item 7: the daemon notices a step only at its next wake-up. A step of +28m05s
    /// landing at 11:29:50 was noticed at 11:30:05; instants between the landing and the
    /// wake-up were dropped without a word, and the old instant the daemon had woken for
    /// (11:02:00) ran instead.
    #[test]
    fn a_forward_step_noticed_late_runs_what_fell_due_after_it() {
        let mut f = Fake::new(
            vec![
                timed("minutely", "* * * * *", "UTC", Catchup::None),
                timed("half-hourly", "*/30 * * * *", "UTC", Catchup::None),
                timed("fixed", "30 11 * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T11:01:00Z",
            &[],
        );
        f.run_until("2026-01-01T11:01:05Z");
        // The daemon sleeps 55 s, until 11:02:00; 40 s into it the clock is set forward.
        f.observe(
            ts("2026-01-01T11:30:05Z"),
            Duration::from_secs(55),
            Duration::from_secs(55),
        );
        for job in ["minutely", "half-hourly", "fixed"] {
            assert_eq!(f.instants(job), [ts("2026-01-01T11:30:00Z")], "{job}");
        }
        assert!(
            f.log.iter().all(|(_, _, w)| *w == Why::Scheduled),
            "{:?}",
            f.log
        );
        assert!(
            f.notes[0].starts_with("the wall clock stepped forward by 28m5s"),
            "{:?}",
            f.notes
        );
        // Every decision is logged: what the step jumped over too.
        assert!(
            f.notes.iter().any(|n| n.starts_with(
                "job minutely: 28 instant(s) jumped over (2026-01-01T11:02:00Z to \
                 2026-01-01T11:29:00Z); not run"
            )),
            "{:?}",
            f.notes
        );
        f.run_until("2026-01-01T11:31:30Z");
        assert_eq!(
            f.instants("minutely"),
            [ts("2026-01-01T11:30:00Z"), ts("2026-01-01T11:31:00Z")]
        );
    }

    /// Issue 15, item 7: after a +2 h step a `*/20 * * * * *` job ran the old instant
    /// 10:59:40 (the one the daemon had woken for) and never 12:59:40.
    #[test]
    fn a_two_hour_step_runs_the_new_instant_not_the_old_one() {
        let mut f = Fake::new(
            vec![timed("s", "*/20 * * * * *", "UTC", Catchup::All)],
            "2026-01-01T10:59:00Z",
            &[],
        );
        f.run_until("2026-01-01T10:59:21Z");
        f.observe(
            ts("2026-01-01T12:59:40Z"),
            Duration::from_secs(19),
            Duration::from_secs(19),
        );
        f.run_until("2026-01-01T13:00:01Z");
        assert_eq!(
            f.instants("s"),
            [
                ts("2026-01-01T10:59:20Z"),
                ts("2026-01-01T12:59:40Z"),
                ts("2026-01-01T13:00:00Z")
            ]
        );
        assert!(
            f.notes
                .iter()
                .any(|n| n.starts_with("job s: 360 instant(s) jumped over")),
            "{:?}",
            f.notes
        );
    }

    /// Issue 15, item 7, the other way: instants between a step back and the wake-up that
    /// noticed it are due in the new time (a wild job repeats wall times, a fixed-time job
    /// runs what it has not run), and what is not repeated is said.
    #[test]
    fn a_step_back_noticed_late_runs_what_fell_due_after_it() {
        let mut f = Fake::new(
            vec![
                timed("minutely", "* * * * *", "UTC", Catchup::None),
                timed("ran", "30 3 * * *", "UTC", Catchup::None),
                timed("not-yet", "41 2 * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T03:20:00Z",
            &[],
        );
        f.run_until("2026-01-01T03:40:30Z");
        assert_eq!(f.instants("ran"), [ts("2026-01-01T03:30:00Z")]);
        // Set back an hour during the 30 s sleep until 03:41:00.
        f.observe(
            ts("2026-01-01T02:41:00Z"),
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        assert_eq!(f.instants("not-yet"), [ts("2026-01-01T02:41:00Z")]);
        assert_eq!(
            f.instants("minutely").last(),
            Some(&ts("2026-01-01T02:41:00Z"))
        );
        assert!(
            f.notes[0].starts_with("the wall clock stepped back by 1h"),
            "{:?}",
            f.notes
        );
        assert!(
            f.notes.iter().any(|n| n
                .starts_with("job ran: the clock shows instants up to 2026-01-01T03:30:00Z again")),
            "{:?}",
            f.notes
        );
        f.run_until("2026-01-01T03:45:00Z");
        assert_eq!(f.instants("ran"), [ts("2026-01-01T03:30:00Z")]);
    }

    #[test]
    fn small_clock_jitter_neither_repeats_nor_skips() {
        let mut f = Fake::new(
            vec![
                timed("sec", "* * * * * *", "UTC", Catchup::None),
                timed("fixed", "0 4 * * *", "UTC", Catchup::None),
            ],
            "2026-01-01T03:59:58Z",
            &[],
        );
        f.run_until("2026-01-01T04:00:00.5Z");
        // NTP steps the clock back 1.5 s (under the 2 s tolerance): the seconds already
        // run come round again on the wall clock but do not run again.
        f.observe(
            ts("2026-01-01T03:59:59.2Z"),
            Duration::from_millis(200),
            Duration::from_millis(200),
        );
        f.run_until("2026-01-01T04:00:02.5Z");
        // Then forward by 1.5 s: nothing is skipped.
        f.observe(
            ts("2026-01-01T04:00:04.2Z"),
            Duration::from_millis(200),
            Duration::from_millis(200),
        );
        f.run_until("2026-01-01T04:00:05.5Z");
        let got = f.instants("sec");
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "an instant ran twice: {got:?}");
        assert_eq!(
            unique,
            (59..=65)
                .map(|s| ts("2026-01-01T03:59:00Z") + SignedDuration::from_secs(s))
                .collect::<Vec<_>>()
        );
        assert_eq!(f.instants("fixed"), [ts("2026-01-01T04:00:00Z")]);
        assert!(f.notes.is_empty(), "{:?}", f.notes);
    }

    #[test]
    fn a_big_step_is_a_correction() {
        let mut f = Fake::new(
            vec![timed("fixed", "0 12 * * *", "UTC", Catchup::All)],
            "2026-01-01T06:00:00Z",
            &[],
        );
        f.observe(
            ts("2026-01-01T18:00:00Z"),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert!(f.log.is_empty());
        assert!(f.notes[0].contains("treated as a correction"));
        assert_eq!(f.s.next_of("fixed"), Some(ts("2026-01-02T12:00:00Z")));
    }

    #[test]
    fn a_late_wakeup_neither_skips_nor_repeats() {
        let mut f = Fake::new(
            vec![timed("s", "* * * * * *", "UTC", Catchup::None)],
            "2026-01-01T00:00:00Z",
            &[],
        );
        // The loop was stalled for 1.5 s (load): both seconds run, once each.
        f.observe(
            ts("2026-01-01T00:00:02.5Z"),
            Duration::from_millis(2500),
            Duration::from_millis(2500),
        );
        assert_eq!(
            f.instants("s"),
            [ts("2026-01-01T00:00:01Z"), ts("2026-01-01T00:00:02Z")]
        );
        f.observe(
            ts("2026-01-01T00:00:03Z"),
            Duration::from_millis(500),
            Duration::from_millis(500),
        );
        assert_eq!(f.instants("s").len(), 3);
    }

    /// The heap hands out what a scan of the table would, in the same order: by instant,
    /// then table order.
    #[test]
    fn same_instant_dispatches_come_in_table_order() {
        let mut f = Fake::new(
            vec![
                timed("x", "*/2 * * * * *", "UTC", Catchup::None),
                timed("y", "* * * * * *", "UTC", Catchup::None),
                timed("z", "0 0 1 1 *", "UTC", Catchup::None),
            ],
            "2026-01-01T00:00:00Z",
            &[],
        );
        let late = Duration::from_millis(2500);
        f.observe(ts("2026-01-01T00:00:02.5Z"), late, late);
        let got: Vec<_> = f.log.iter().map(|(j, t, _)| (j.as_str(), *t)).collect();
        let at = |s| ts(&format!("2026-01-01T00:00:0{s}Z"));
        assert_eq!(got, [("y", at(1)), ("x", at(2)), ("y", at(2))]);
        assert_eq!(f.s.next_due(), Some(at(3)));
        assert_eq!(f.s.next_of("z"), Some(ts("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn reload_keeps_unchanged_clocks_and_starts_new_jobs_from_now() {
        let (mut s, _, _) = Scheduler::start(
            vec![timed("a", "0 * * * *", "UTC", Catchup::None)],
            ts("2026-01-01T00:30:00Z"),
            &HashMap::new(),
        );
        s.reload(
            vec![
                timed("a", "0 * * * *", "UTC", Catchup::None),
                timed("b", "*/5 * * * *", "UTC", Catchup::None),
            ],
            ts("2026-01-01T00:31:00Z"),
        );
        assert_eq!(s.next_of("a"), Some(ts("2026-01-01T01:00:00Z")));
        assert_eq!(s.next_of("b"), Some(ts("2026-01-01T00:35:00Z")));
        s.reload(
            vec![timed("b", "*/5 * * * *", "UTC", Catchup::None)],
            ts("2026-01-01T00:32:00Z"),
        );
        assert_eq!(s.next_of("a"), None);
        assert_eq!(s.len(), 1);
    }
}
