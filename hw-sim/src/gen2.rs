//! Gen2 sessions as tags keep them (EPC UHF Gen2 Air Interface, 6.3.2.2 "Sessions and
//! inventoried flags").
//!
//! A tag has an inventoried flag per session (S0–S3), `A` or `B`. A reader's Query names a
//! session and a target; only tags whose flag equals the target take part, and a tag that
//! is read (acknowledged) flips its flag. The flags differ in how long a `B` lasts (Table
//! 6.20):
//! - S0: while the tag is powered; it falls back to `A` when the field goes away, which on
//!   a reader or a multiplexer is at the end of every command;
//! - S1: between 500 ms and 5 s whether powered or not (the spread is the tag's own; here a
//!   fixed draw per EPC, so runs repeat);
//! - S2 and S3: indefinitely while powered, and at least 2 s without power; kept here for
//!   2 s after the tag was last read.
//!
//! So a reader that inventories in S1 with target A hears a tag once, and then not again for
//! up to five seconds, on whichever antenna: that is what makes repeated rounds short, and
//! why a tag cross-read by the shelf below is silent when its own shelf is read next.

use std::collections::HashMap;
use std::time::Duration;

/// A Query's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    A,
    B,
}

impl Target {
    /// Target byte of the R2000's session inventory (0 = A, 1 = B).
    pub fn from_byte(b: u8) -> Option<Target> {
        match b {
            0 => Some(Target::A),
            1 => Some(Target::B),
            _ => None,
        }
    }
}

/// The inventoried flags of every tag, in simulated time.
#[derive(Debug, Default, Clone)]
pub struct Sessions {
    /// (EPC, session) → when the flag was set to `B`. Absent: `A`.
    flipped: HashMap<(String, u8), Duration>,
}

/// How long tag `epc`'s S1 flag stays `B`: 0.5–5 s, fixed per tag.
pub fn s1_persistence(epc: &str) -> Duration {
    // FNV-1a of the EPC: a stable spread over the tags of a room.
    let hash = epc.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Duration::from_millis(500 + hash % 4_500)
}

const S2_S3_UNPOWERED: Duration = Duration::from_secs(2);

/// How long a `B` set in `session` lasts while the field stays (S0: as long as it does).
fn lasts(epc: &str, session: u8) -> Duration {
    match session {
        0 => Duration::MAX,
        1 => s1_persistence(epc),
        _ => S2_S3_UNPOWERED,
    }
}

impl Sessions {
    /// The flag of `epc` in `session` at simulated time `now`.
    pub fn flag(&self, epc: &str, session: u8, now: Duration) -> Target {
        match self.flipped.get(&(epc.to_string(), session)) {
            Some(&set) if now.saturating_sub(set) < lasts(epc, session) => Target::B,
            _ => Target::A,
        }
    }

    /// Whether `epc` takes part in a Query of `session` and `target` at `now`.
    pub fn answers(&self, epc: &str, session: u8, target: Target, now: Duration) -> bool {
        self.flag(epc, session, now) == target
    }

    /// `epc` was read in a round of `session` at `now`: its flag flips.
    pub fn read(&mut self, epc: &str, session: u8, now: Duration) {
        let key = (epc.to_string(), session);
        match self.flag(epc, session, now) {
            Target::A => {
                self.flipped.insert(key, now);
            }
            Target::B => {
                self.flipped.remove(&key);
            }
        }
    }

    /// The field went away (a command ended, the multiplexer switched): every S0 flag is `A`
    /// again, and flags whose time is up are forgotten.
    pub fn field_off(&mut self, now: Duration) {
        self.flipped.retain(|(epc, session), set| {
            *session != 0 && now.saturating_sub(*set) < lasts(epc, *session)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn s1_persistence_is_within_the_standard_and_differs_between_tags() {
        let all: Vec<Duration> = (0..1000)
            .map(|i| s1_persistence(&format!("E280{i:020X}")))
            .collect();
        assert!(all.iter().all(|d| (MS(500)..MS(5000)).contains(d)));
        let short = all.iter().filter(|d| **d < MS(1000)).count();
        assert!((50..200).contains(&short), "{short} of 1000 under 1 s");
    }

    #[test]
    fn a_tag_read_in_s1_is_silent_for_target_a_until_its_persistence_ends() {
        let epc = "E2801160600002054E5D3C73";
        let lasts = s1_persistence(epc);
        let mut s = Sessions::default();
        assert!(s.answers(epc, 1, Target::A, MS(0)));
        s.read(epc, 1, MS(10));
        assert!(!s.answers(epc, 1, Target::A, MS(11)));
        assert!(s.answers(epc, 1, Target::B, MS(11)));
        // Power does not matter to S1.
        s.field_off(MS(20));
        assert!(!s.answers(epc, 1, Target::A, MS(10) + lasts - MS(1)));
        assert!(s.answers(epc, 1, Target::A, MS(10) + lasts));
        // Other sessions are not touched.
        assert!(s.answers(epc, 2, Target::A, MS(11)));
    }

    #[test]
    fn s0_lasts_while_the_field_does_and_s2_two_seconds() {
        let epc = "300833B2DDD9014000000001";
        let mut s = Sessions::default();
        s.read(epc, 0, MS(0));
        s.read(epc, 2, MS(0));
        assert!(!s.answers(epc, 0, Target::A, Duration::from_secs(60)));
        s.field_off(MS(100));
        assert!(s.answers(epc, 0, Target::A, MS(101)));
        assert!(!s.answers(epc, 2, Target::A, MS(1999)));
        assert!(s.answers(epc, 2, Target::A, MS(2000)));
    }

    #[test]
    fn a_tag_read_with_target_b_flips_back_to_a() {
        let epc = "E200301666130121155074EF";
        let mut s = Sessions::default();
        s.read(epc, 1, MS(0));
        assert_eq!(s.flag(epc, 1, MS(1)), Target::B);
        s.read(epc, 1, MS(2));
        assert_eq!(s.flag(epc, 1, MS(3)), Target::A);
    }
}
