//! Polls: what may be asked, and a poll's state as everyone sees it.
//!
//! A poll is opened by the host or a moderator with 2–10 options and an
//! optional duration; each user votes once (the store records voters and
//! counts in one atomic step); it closes by hand, by its timer or when the
//! room ends. Everything here is pure: validation and presentation.

use serde::{Deserialize, Serialize};

use super::text::{self, BadText, Lines};

/// Fewest options a poll may have.
pub const MIN_OPTIONS: usize = 2;
/// Most options a poll may have.
pub const MAX_OPTIONS: usize = 10;
/// Longest question, in characters.
pub const QUESTION_MAX_CHARS: usize = 200;
/// Longest option, in characters.
pub const OPTION_MAX_CHARS: usize = 100;
/// Shortest timed poll, in seconds: shorter ones close before people can read them.
pub const MIN_DURATION_SECS: u64 = 5;
/// Longest timed poll, in seconds (a day).
pub const MAX_DURATION_SECS: u64 = 86_400;

/// Why a poll cannot be opened as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollSpecError {
    /// The question is empty or too long.
    #[error("question must be 1 to {QUESTION_MAX_CHARS} characters")]
    Question,
    /// Too few or too many options.
    #[error("a poll has {MIN_OPTIONS} to {MAX_OPTIONS} options")]
    OptionCount,
    /// An option is empty or too long.
    #[error("option {0} must be 1 to {OPTION_MAX_CHARS} characters")]
    Option(usize),
    /// Two options read the same.
    #[error("options {0} and {1} are the same")]
    Duplicate(usize, usize),
    /// The duration is out of range.
    #[error("duration_secs must be {MIN_DURATION_SECS} to {MAX_DURATION_SECS}")]
    Duration,
    /// The question or an option holds a control or bidi-override character.
    #[error(transparent)]
    Text(#[from] BadText),
}

/// A poll as a moderator asks for it (the `poll_open` payload).
#[derive(Debug, Clone, Deserialize)]
pub struct PollSpec {
    /// The question.
    pub question: String,
    /// The answers, in display order; votes name them by index.
    pub options: Vec<String>,
    /// Close automatically after this many seconds; absent: close by hand.
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

impl PollSpec {
    /// Check the limits; returns the spec with trimmed texts.
    pub fn validate(self) -> Result<Self, PollSpecError> {
        let question = self.question.trim().to_owned();
        if question.is_empty() || question.chars().count() > QUESTION_MAX_CHARS {
            return Err(PollSpecError::Question);
        }
        text::check("question", &question, Lines::One)?;
        if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&self.options.len()) {
            return Err(PollSpecError::OptionCount);
        }
        let options: Vec<String> = self.options.iter().map(|o| o.trim().to_owned()).collect();
        for (i, option) in options.iter().enumerate() {
            if option.is_empty() || option.chars().count() > OPTION_MAX_CHARS {
                return Err(PollSpecError::Option(i));
            }
            text::check("option", option, Lines::One)?;
            if let Some(j) = options[..i].iter().position(|o| o == option) {
                return Err(PollSpecError::Duplicate(j, i));
            }
        }
        if let Some(secs) = self.duration_secs
            && !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&secs)
        {
            return Err(PollSpecError::Duration);
        }
        Ok(Self {
            question,
            options,
            duration_secs: self.duration_secs,
        })
    }

    /// The stored definition of this (validated) spec, opened at `now_ms`.
    pub fn into_def(self, id: String, by: &str, now_ms: u64) -> PollDef {
        PollDef {
            closes_at_ms: self
                .duration_secs
                .map(|secs| now_ms.saturating_add(secs.saturating_mul(1000))),
            id,
            question: self.question,
            options: self.options,
            opened_by: by.to_owned(),
            opened_at_ms: now_ms,
        }
    }
}

/// What never changes about a poll once opened (stored as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollDef {
    /// `p` + 8 base62 characters, unique within the room.
    #[serde(rename = "poll_id")]
    pub id: String,
    /// The question.
    pub question: String,
    /// The answers.
    pub options: Vec<String>,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    pub opened_at_ms: u64,
    /// When its timer closes it, if timed.
    pub closes_at_ms: Option<u64>,
}

/// Whether a poll takes votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollState {
    /// Takes votes.
    Open,
    /// Final.
    Closed,
}

/// A poll with its counts, as pushed and as in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollView {
    /// The definition (flattened into the JSON).
    #[serde(flatten)]
    pub def: PollDef,
    /// Open or closed.
    pub state: PollState,
    /// Votes per option, in option order.
    pub tallies: Vec<u64>,
    /// All votes.
    pub votes: u64,
    /// When it closed.
    pub closed_at_ms: Option<u64>,
}

impl PollView {
    /// The view of `def` with `tallies` (padded or cut to the option count).
    pub fn new(def: PollDef, mut tallies: Vec<u64>, closed_at_ms: Option<u64>) -> Self {
        tallies.resize(def.options.len(), 0);
        Self {
            votes: tallies.iter().sum(),
            state: if closed_at_ms.is_some() {
                PollState::Closed
            } else {
                PollState::Open
            },
            def,
            tallies,
            closed_at_ms,
        }
    }

    /// Whether its timer has run out at `now_ms` (it may still read open
    /// until someone closes it).
    pub fn expired(&self, now_ms: u64) -> bool {
        self.state == PollState::Open && self.def.closes_at_ms.is_some_and(|at| now_ms >= at)
    }

    /// Indices of the options with the most votes (several on a tie, none
    /// without votes).
    pub fn winners(&self) -> Vec<usize> {
        let best = self.tallies.iter().copied().max().unwrap_or(0);
        if best == 0 {
            return Vec::new();
        }
        (0..self.tallies.len())
            .filter(|&i| self.tallies[i] == best)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(question: &str, options: &[&str], duration_secs: Option<u64>) -> PollSpec {
        PollSpec {
            question: question.into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            duration_secs,
        }
    }

    #[test]
    fn valid_specs_are_trimmed_and_timed() {
        let ok = spec(" Tea or coffee? ", &[" tea", "coffee "], Some(60))
            .validate()
            .expect("valid");
        assert_eq!(ok.question, "Tea or coffee?");
        assert_eq!(ok.options, ["tea", "coffee"]);
        let def = ok.into_def("p1".into(), "alice", 1_000);
        assert_eq!(def.closes_at_ms, Some(61_000));
        let ten: Vec<String> = (0..10).map(|i| format!("o{i}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert!(spec("q", &ten, None).validate().is_ok());
    }

    #[test]
    fn invalid_specs_name_the_problem() {
        let eleven: Vec<String> = (0..11).map(|i| format!("o{i}")).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        let long = "x".repeat(QUESTION_MAX_CHARS + 1);
        let cases = [
            (spec(" ", &["a", "b"], None), PollSpecError::Question),
            (spec(&long, &["a", "b"], None), PollSpecError::Question),
            (spec("q", &["a"], None), PollSpecError::OptionCount),
            (spec("q", &eleven, None), PollSpecError::OptionCount),
            (spec("q", &["a", " "], None), PollSpecError::Option(1)),
            (
                spec("q", &["a", "b", "a "], None),
                PollSpecError::Duplicate(0, 2),
            ),
            (spec("q", &["a", "b"], Some(4)), PollSpecError::Duration),
            (
                spec("q", &["a", "b"], Some(86_401)),
                PollSpecError::Duration,
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(spec.validate().map(|_| ()), Err(want));
        }
    }

    #[test]
    fn views_count_votes_and_name_winners() {
        let def = spec("q", &["a", "b", "c"], Some(10))
            .validate()
            .expect("valid")
            .into_def("p1".into(), "alice", 0);
        let view = PollView::new(def.clone(), vec![2, 5], None);
        assert_eq!(view.tallies, [2, 5, 0]);
        assert_eq!((view.votes, view.state), (7, PollState::Open));
        assert_eq!(view.winners(), [1]);
        assert!(!view.expired(9_999) && view.expired(10_000));
        let tie = PollView::new(def.clone(), vec![3, 3, 1], Some(5));
        assert_eq!((tie.winners(), tie.state), (vec![0, 1], PollState::Closed));
        assert!(!tie.expired(99_999), "closed polls do not expire");
        assert!(PollView::new(def, vec![], None).winners().is_empty());
    }
}
