//! `ClientMessage`'s hand-written `Deserialize` against the serde derive it
//! replaced (kept here, verbatim, as the reference): on every object built
//! from the keys and values that matter, both must accept the same messages
//! and refuse the same ones. Error texts may differ; outcomes may not.

use porter_wire::{ClientMessage, Error, Secret, decode_client_message, decode_message};
use proptest::prelude::*;
use serde::Deserialize;

/// The derive the hand-written decoder replaced, with the fields and the
/// message of protocol 1.1 (`since`, `to`, `who`).
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reference {
    Hello {
        #[serde(default)]
        client: Option<String>,
        #[serde(default)]
        token: Option<Secret>,
        #[serde(default)]
        since: Option<u64>,
    },
    Answer {
        id: String,
        text: Secret,
    },
    Say {
        text: String,
        #[serde(default)]
        to: Option<String>,
    },
    Logout,
    Bye,
    Who,
    #[serde(other)]
    Unknown,
}

impl From<Reference> for ClientMessage {
    fn from(message: Reference) -> Self {
        match message {
            Reference::Hello {
                client,
                token,
                since,
            } => ClientMessage::Hello {
                client,
                token,
                since,
            },
            Reference::Answer { id, text } => ClientMessage::Answer { id, text },
            Reference::Say { text, to } => ClientMessage::Say { text, to },
            Reference::Logout => ClientMessage::Logout,
            Reference::Bye => ClientMessage::Bye,
            Reference::Who => ClientMessage::Who,
            Reference::Unknown => ClientMessage::Unknown,
        }
    }
}

const KEYS: &[&str] = &[
    r#""type""#,
    r#""client""#,
    r#""token""#,
    r#""id""#,
    r#""text""#,
    r#""to""#,
    r#""since""#,
    r#""from""#,
    r#""t\u0065xt""#,
    r#""ty\u0070e""#,
];

const VALUES: &[&str] = &[
    r#""hello""#,
    r#""answer""#,
    r#""say""#,
    r#""logout""#,
    r#""bye""#,
    r#""who""#,
    r#""unknown""#,
    r#""welcome""#,
    r#""""#,
    r#""s\u0061y""#,
    r#""caf\u00e9 \"q\"""#,
    "null",
    "0",
    "5",
    "-1.5",
    "true",
    "[]",
    r#"["say"]"#,
    "{}",
    r#"{"type":"say","text":"x"}"#,
];

fn object(entries: &[(usize, usize)]) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|&(k, v)| format!("{}:{}", KEYS[k], VALUES[v]))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn assert_same(payload: &str) {
    let ours = decode_message::<ClientMessage>(payload.as_bytes());
    let reference = decode_message::<Reference>(payload.as_bytes()).map(ClientMessage::from);
    // The server's shortcut must agree too.
    let shortcut = decode_client_message(payload.as_bytes());
    match (&shortcut, &reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "shortcut: {payload}"),
        (Err(Error::InvalidMessage(_)), Err(Error::InvalidMessage(_))) => {}
        _ => panic!("{payload}: shortcut {shortcut:?}, derive {reference:?}"),
    }
    match (&ours, &reference) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{payload}"),
        (Err(Error::InvalidMessage(_)), Err(Error::InvalidMessage(_))) => {}
        _ => panic!("{payload}: hand-written {ours:?}, derive {reference:?}"),
    }
}

#[test]
fn every_object_of_up_to_two_fields_decodes_as_the_derive_did() {
    assert_same("{}");
    for k1 in 0..KEYS.len() {
        for v1 in 0..VALUES.len() {
            assert_same(&object(&[(k1, v1)]));
            for k2 in 0..KEYS.len() {
                for v2 in 0..VALUES.len() {
                    assert_same(&object(&[(k1, v1), (k2, v2)]));
                }
            }
        }
    }
}

#[test]
fn typical_messages_decode_as_the_derive_did() {
    for payload in [
        r#"{"type":"say","text":"hi"}"#,
        r#"{"text":"hi","type":"say"}"#,
        r#"{"type":"say","text":"hi","text":"again"}"#,
        r#"{"type":"hello","client":"porter 0.1","token":"abc"}"#,
        r#"{"type":"hello","client":null,"token":null}"#,
        r#"{"type":"hello","client":"a","client":null}"#,
        r#"{"type":"answer","id":"name","text":"ann"}"#,
        r#"{"type":"answer","id":"name"}"#,
        r#"{"type":"answer","text":"x","id":7}"#,
        r#"{"type":"bye","text":5,"text":6}"#,
        r#"{"type":"say","text":"a","type":"say"}"#,
        r#"{"type":"dance","text":{"deep":[1,{"x":null}]}}"#,
        " \n{\"type\":\"logout\"}\t",
        // The compact say, and what only looks like it.
        r#"{"type":"say","text":""}"#,
        r#"{"type":"say","text":"café plain"}"#,
        "{\"type\":\"say\",\"text\":\"caf\u{e9} \u{1f600}\"}",
        r#"{"type":"say","text":"a"b"}"#,
        r#"{"type":"say","text":"a\"}"#,
        r#"{"type":"say","text":"a\\"}"#,
        r#"{"type":"say","text":"\ud800"}"#,
        "{\"type\":\"say\",\"text\":\"tab\there\"}",
        "{\"type\":\"say\",\"text\":\"nul\u{0}\"}",
        r#"{"type":"say","text":"x"} "#,
        r#"{"type":"say","text":"x"}}"#,
        r#"{"type":"say","text":"x","text":"y"}"#,
        r#"{"type":"say","text":"","from":"me"}"#,
    ] {
        assert_same(payload);
    }
}

proptest! {
    #[test]
    fn random_objects_decode_as_the_derive_did(
        entries in proptest::collection::vec((0..KEYS.len(), 0..VALUES.len()), 0..6)
    ) {
        assert_same(&object(&entries));
    }
}
