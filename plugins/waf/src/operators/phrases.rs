//! Phrase sets for `@pm` and `@pmFromFile`: one Aho-Corasick automaton,
//! ASCII case-insensitive, as ModSecurity matches phrases.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// A compiled set of phrases.
#[derive(Debug, Clone)]
pub struct PhraseSet {
    ac: AhoCorasick,
}

impl PhraseSet {
    /// Builds the automaton; an empty list is refused.
    pub fn new(phrases: Vec<String>) -> Result<PhraseSet, String> {
        if phrases.is_empty() {
            return Err("the phrase list is empty".to_string());
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&phrases)
            .map_err(|e| format!("phrase list does not compile: {e}"))?;
        Ok(PhraseSet { ac })
    }

    /// The first phrase found in `value`, as it appears there.
    pub fn find<'a>(&self, value: &'a [u8]) -> Option<&'a [u8]> {
        let m = self.ac.find(value)?;
        value.get(m.start()..m.end())
    }
}
