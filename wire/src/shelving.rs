//! The shelving vocabulary that is stackroom's own, shared by the controller's drivers and
//! the simulator: the generic commands, the refusal and fault codes, and the occupancy
//! masks. Vendor protocols carry these in their own frames (see [`crate::framed`], the
//! Modbus register map of a profile, [`crate::mqtt_json`]); what they mean is said once,
//! here.
//!
//! **Gaps.** A range of `n` carriages has `n + 1` gaps: gap 0 between the left wall and
//! carriage 1, gap `k` (1 ≤ k < n) the aisle between carriages `k` and `k + 1`, gap `n`
//! between carriage `n` and the right wall. A wall gap is always shut beside a fixed end
//! carriage; beside a movable one a person can stand in it. Occupancy masks number their
//! bits by gap: bit `g` set means someone (or something) is in gap `g`.

use serde::{Deserialize, Serialize};

/// A command to a shelving controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    OpenAisle {
        aisle: u16,
    },
    /// Pack every movable carriage to the left.
    Close,
    /// Spread the free space evenly over the aisles, for air.
    Ventilate,
    Stop,
    Lock,
    Unlock,
    /// Clear faults whose cause is gone.
    ResetFaults,
    /// The pre-motion warning (light and buzzer) on or off.
    Warning {
        on: bool,
    },
}

impl Command {
    /// Whether the command moves carriages.
    pub fn is_motion(self) -> bool {
        matches!(
            self,
            Command::OpenAisle { .. } | Command::Close | Command::Ventilate
        )
    }

    /// The command's name in JSON messages.
    pub fn name(self) -> &'static str {
        match self {
            Command::OpenAisle { .. } => "open_aisle",
            Command::Close => "close",
            Command::Ventilate => "ventilate",
            Command::Stop => "stop",
            Command::Lock => "lock",
            Command::Unlock => "unlock",
            Command::ResetFaults => "reset_faults",
            Command::Warning { .. } => "warning",
        }
    }

    /// A command from its JSON name and arguments; `None` when the name is unknown or an
    /// argument it needs is missing.
    pub fn from_parts(name: &str, aisle: Option<u16>, on: Option<bool>) -> Option<Command> {
        Some(match name {
            "open_aisle" => Command::OpenAisle { aisle: aisle? },
            "close" => Command::Close,
            "ventilate" => Command::Ventilate,
            "stop" => Command::Stop,
            "lock" => Command::Lock,
            "unlock" => Command::Unlock,
            "reset_faults" => Command::ResetFaults,
            "warning" => Command::Warning { on: on? },
            _ => return None,
        })
    }
}

/// Why a shelving controller refused a command, with the code the wire protocols carry
/// (Modbus `last_result`, the framed command answer) and the name JSON messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    Estop,
    Locked,
    Fault,
    /// A person is in a gap the motion would narrow.
    AisleOccupied,
    /// The safety sweep sees an obstacle in a gap the motion would narrow.
    Obstacle,
    NoSuchAisle,
    /// The controller's heartbeat is missing: the drives are off until it is back.
    Watchdog,
    /// The command arrived after the expiry it carried.
    Expired,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Estop,
        Refusal::Locked,
        Refusal::Fault,
        Refusal::AisleOccupied,
        Refusal::Obstacle,
        Refusal::NoSuchAisle,
        Refusal::Watchdog,
        Refusal::Expired,
    ];

    pub fn code(self) -> u16 {
        match self {
            Refusal::Estop => 1,
            Refusal::Locked => 2,
            Refusal::Fault => 3,
            Refusal::AisleOccupied => 4,
            Refusal::Obstacle => 5,
            Refusal::NoSuchAisle => 6,
            Refusal::Watchdog => 7,
            Refusal::Expired => 8,
        }
    }

    pub fn from_code(code: u16) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Estop => "estop",
            Refusal::Locked => "locked",
            Refusal::Fault => "fault",
            Refusal::AisleOccupied => "aisle_occupied",
            Refusal::Obstacle => "obstacle",
            Refusal::NoSuchAisle => "no_such_aisle",
            Refusal::Watchdog => "watchdog",
            Refusal::Expired => "expired",
        }
    }

    pub fn from_name(name: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Words for a fault code: 1 motor, 2 jam, 3 and up the vendor's own.
pub fn fault_words(code: u16) -> String {
    match code {
        1 => "motor fault".into(),
        2 => "jammed".into(),
        code => format!("fault code {code}"),
    }
}

/// A gap that does not fit the mask it is to be written into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("gap {gap} does not fit an occupancy mask of {bits} bits")]
pub struct MaskOverflow {
    pub gap: u16,
    pub bits: usize,
}

/// The gaps of a mask held in Modbus registers: register `j` holds gaps `16j ..= 16j + 15`,
/// bit `i` of it gap `16j + i`.
pub fn gaps_from_words(words: &[u16]) -> Vec<u16> {
    words
        .iter()
        .enumerate()
        .flat_map(|(j, w)| {
            (0..16u16)
                .filter(move |i| w & (1 << i) != 0)
                .map(move |i| 16 * j as u16 + i)
        })
        .collect()
}

/// The registers of a mask of `words` registers with `gaps` set.
pub fn words_from_gaps(gaps: &[u16], words: usize) -> Result<Vec<u16>, MaskOverflow> {
    let mut out = vec![0u16; words];
    for &g in gaps {
        let slot = out.get_mut(g as usize / 16).ok_or(MaskOverflow {
            gap: g,
            bits: words * 16,
        })?;
        *slot |= 1 << (g % 16);
    }
    Ok(out)
}

/// The gaps of a mask held in bytes as one big-endian number: the last byte holds gaps
/// 0 to 7, the one before it 8 to 15, and so on.
pub fn gaps_from_be_bytes(bytes: &[u8]) -> Vec<u16> {
    bytes
        .iter()
        .rev()
        .enumerate()
        .flat_map(|(j, b)| {
            (0..8u16)
                .filter(move |i| b & (1 << i) != 0)
                .map(move |i| 8 * j as u16 + i)
        })
        .collect()
}

/// The bytes of a big-endian mask of `len` bytes with `gaps` set.
pub fn be_bytes_from_gaps(gaps: &[u16], len: usize) -> Result<Vec<u8>, MaskOverflow> {
    let mut out = vec![0u8; len];
    for &g in gaps {
        let j = g as usize / 8;
        if j >= len {
            return Err(MaskOverflow {
                gap: g,
                bits: len * 8,
            });
        }
        out[len - 1 - j] |= 1 << (g % 8);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_and_names_are_one_table() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
            assert_eq!(Refusal::from_name(r.name()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
        }
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(99), None);
    }

    #[test]
    fn masks_hold_every_gap_of_a_long_range() {
        // A 20-carriage range: 21 gaps, the right wall gap is 20, aisle 18 is gap 18.
        let gaps = vec![0, 1, 15, 16, 18, 20];
        let words = words_from_gaps(&gaps, 2).unwrap();
        assert_eq!(words, vec![0b1000_0000_0000_0011, 0b0001_0101]);
        assert_eq!(gaps_from_words(&words), gaps);
        let bytes = be_bytes_from_gaps(&gaps, 3).unwrap();
        assert_eq!(bytes, vec![0b0001_0101, 0b1000_0000, 0b0000_0011]);
        assert_eq!(gaps_from_be_bytes(&bytes), gaps);
        assert_eq!(
            words_from_gaps(&[18], 1),
            Err(MaskOverflow { gap: 18, bits: 16 })
        );
        assert!(be_bytes_from_gaps(&[16], 2).is_err());
    }

    #[test]
    fn commands_have_one_json_name_each() {
        let all = [
            Command::OpenAisle { aisle: 3 },
            Command::Close,
            Command::Ventilate,
            Command::Stop,
            Command::Lock,
            Command::Unlock,
            Command::ResetFaults,
            Command::Warning { on: true },
        ];
        for c in all {
            let (aisle, on) = match c {
                Command::OpenAisle { aisle } => (Some(aisle), None),
                Command::Warning { on } => (None, Some(on)),
                _ => (None, None),
            };
            assert_eq!(Command::from_parts(c.name(), aisle, on), Some(c));
        }
        assert_eq!(Command::from_parts("open_aisle", None, None), None);
        assert_eq!(Command::from_parts("jump", None, None), None);
        assert!(Command::Close.is_motion() && !Command::Stop.is_motion());
    }
}
