//! The message layer against PROTOCOL.md sections 2, 3 and 5: every message
//! type, in both directions, checked against JSON written by hand from the
//! spec, plus what a receiver must tolerate (unknown fields and types) and
//! what it must refuse (no `type`, not an object, fields of the wrong shape).

use bytes::BytesMut;
use porter_wire::{
    AuthMode, ClientMessage, Error, ErrorCode, FrameCodec, HEADER_LEN, PROTOCOL_VERSION,
    ReadFrameExt, Secret, ServerMessage, WriteFrameExt, decode_message,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// Checks both directions against one literal: the literal decodes to
/// `message`, and `message` encodes to the literal (compared as JSON values,
/// so field order and spacing do not matter). Then the same through frames:
/// `encode_message` on the codec and `send_message`/`recv_message`.
fn assert_wire_form<M>(literal: &str, message: M)
where
    M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decoded: M = decode_message(literal.as_bytes()).expect(literal);
    assert_eq!(decoded, message, "decoding {literal}");

    let expected: Value = serde_json::from_str(literal).unwrap();
    let mut buf = BytesMut::new();
    FrameCodec::new()
        .encode_message(&message, &mut buf)
        .unwrap();
    let len = u32::from_be_bytes(buf[..HEADER_LEN].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        buf.len() - HEADER_LEN,
        "header must give the JSON length"
    );
    let encoded: Value = serde_json::from_slice(&buf[HEADER_LEN..]).unwrap();
    assert_eq!(encoded, expected, "encoding {message:?}");

    let mut wire = Vec::new();
    wire.send_message(&message).unwrap();
    assert_eq!(wire, &buf[..], "send_message and encode_message differ");
    let mut reader = &wire[..];
    assert_eq!(reader.recv_message::<M>().unwrap(), Some(message));
    assert_eq!(reader.recv_message::<M>().unwrap(), None);
}

fn assert_invalid_message<M: DeserializeOwned + std::fmt::Debug>(payload: &str) {
    match decode_message::<M>(payload.as_bytes()) {
        Err(Error::InvalidMessage(_)) => {}
        other => panic!("{payload}: expected InvalidMessage, got {other:?}"),
    }
}

#[test]
fn welcome_matches_the_spec_for_every_auth_mode() {
    for (auth, name) in [
        (AuthMode::None, "none"),
        (AuthMode::Ip, "ip"),
        (AuthMode::Password, "password"),
    ] {
        assert_eq!(auth.as_str(), name);
        assert_wire_form(
            &format!(
                r#"{{"type":"welcome","server":"porter/0.1.0","protocol":1,"auth":"{name}"}}"#
            ),
            ServerMessage::Welcome {
                server: "porter/0.1.0".into(),
                protocol: PROTOCOL_VERSION,
                auth,
                hint: None,
            },
        );
    }
}

#[test]
fn welcome_may_carry_a_hint_for_people_and_old_readers_ignore_it() {
    assert_wire_form(
        r#"{"type":"welcome","server":"porter/0.1.0","protocol":1,"auth":"none","hint":"press Enter"}"#,
        ServerMessage::Welcome {
            server: "porter/0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            auth: AuthMode::None,
            hint: Some("press Enter".into()),
        },
    );
}

#[test]
fn ask_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"ask","id":"password","text":"Password:","secret":true}"#,
        ServerMessage::Ask {
            id: "password".into(),
            text: "Password:".into(),
            secret: true,
        },
    );
    assert_wire_form(
        r#"{"type":"ask","id":"name","text":"Your name?","secret":false}"#,
        ServerMessage::Ask {
            id: "name".into(),
            text: "Your name?".into(),
            secret: false,
        },
    );
}

#[test]
fn ask_without_secret_is_not_secret() {
    let decoded: ServerMessage =
        decode_message(br#"{"type":"ask","id":"user","text":"User:"}"#).unwrap();
    assert_eq!(
        decoded,
        ServerMessage::Ask {
            id: "user".into(),
            text: "User:".into(),
            secret: false,
        }
    );
}

#[test]
fn server_say_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"say","text":"Hello, Ann!","from":"server"}"#,
        ServerMessage::say("Hello, Ann!", "server"),
    );
}

#[test]
fn session_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"session","token":"q1w2e3","user":"ann","expires_at":"2026-12-01T10:00:00Z"}"#,
        ServerMessage::Session {
            token: Secret::new("q1w2e3"),
            user: "ann".into(),
            expires_at: "2026-12-01T10:00:00Z".into(),
        },
    );
}

#[test]
fn ready_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"ready","user":"ann"}"#,
        ServerMessage::Ready { user: "ann".into() },
    );
}

#[test]
fn error_matches_the_spec_for_every_code() {
    let codes = [
        (ErrorCode::FrameTooLarge, "frame_too_large"),
        (ErrorCode::InvalidMessage, "invalid_message"),
        (ErrorCode::UnknownType, "unknown_type"),
        (ErrorCode::Unexpected, "unexpected"),
        (ErrorCode::BadCredentials, "bad_credentials"),
        (ErrorCode::SessionInvalid, "session_invalid"),
        (ErrorCode::InvalidAnswer, "invalid_answer"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::Timeout, "timeout"),
        (ErrorCode::Busy, "busy"),
    ];
    for (code, name) in codes {
        assert_eq!(code.to_string(), name);
        assert_wire_form(
            &format!(r#"{{"type":"error","code":"{name}","text":"refused"}}"#),
            ServerMessage::Error {
                code,
                text: "refused".into(),
            },
        );
    }
}

#[test]
fn error_with_unknown_code_decodes_to_unknown_code() {
    let decoded: ServerMessage =
        decode_message(br#"{"type":"error","code":"quota_exceeded","text":"later"}"#).unwrap();
    assert_eq!(
        decoded,
        ServerMessage::Error {
            code: ErrorCode::Unknown,
            text: "later".into(),
        }
    );
}

#[test]
fn server_bye_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"bye","text":"server shutting down"}"#,
        ServerMessage::Bye {
            text: "server shutting down".into(),
        },
    );
}

#[test]
fn hello_matches_the_spec_with_and_without_optional_fields() {
    assert_wire_form(
        r#"{"type":"hello","client":"porter/0.1.0","token":"q1w2e3"}"#,
        ClientMessage::Hello {
            client: Some("porter/0.1.0".into()),
            token: Some(Secret::new("q1w2e3")),
            since: None,
        },
    );
    assert_wire_form(
        r#"{"type":"hello","client":"nc"}"#,
        ClientMessage::Hello {
            client: Some("nc".into()),
            token: None,
            since: None,
        },
    );
    assert_wire_form(
        r#"{"type":"hello"}"#,
        ClientMessage::Hello {
            client: None,
            token: None,
            since: None,
        },
    );
}

#[test]
fn hello_with_null_optional_fields_decodes_as_absent() {
    let decoded: ClientMessage =
        decode_message(br#"{"type":"hello","client":null,"token":null}"#).unwrap();
    assert_eq!(
        decoded,
        ClientMessage::Hello {
            client: None,
            token: None,
            since: None
        }
    );
}

#[test]
fn answer_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"answer","id":"password","text":"correct horse"}"#,
        ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("correct horse"),
        },
    );
}

#[test]
fn client_say_matches_the_spec() {
    assert_wire_form(
        r#"{"type":"say","text":"hi all"}"#,
        ClientMessage::Say {
            text: "hi all".into(),
            to: None,
        },
    );
}

#[test]
fn logout_and_client_bye_match_the_spec() {
    assert_wire_form(r#"{"type":"logout"}"#, ClientMessage::Logout);
    assert_wire_form(r#"{"type":"bye"}"#, ClientMessage::Bye);
}

#[test]
fn multi_byte_utf8_and_escapes_survive_a_round_trip() {
    assert_wire_form(
        r#"{"type":"say","text":"héllo \"wörld\" — 日本語 🚀\n\ttab","from":"zoë"}"#,
        ServerMessage::say("héllo \"wörld\" — 日本語 🚀\n\ttab", "zoë"),
    );
    // JSON \u escapes (including a surrogate pair) decode to the same text.
    let decoded: ClientMessage =
        decode_message(br#"{"type":"say","text":"h\u00e9 \ud83d\ude80"}"#).unwrap();
    assert_eq!(
        decoded,
        ClientMessage::Say {
            text: "hé 🚀".into(),
            to: None
        }
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let decoded: ServerMessage = decode_message(
        br#"{"type":"say","text":"hi","from":"bob","color":"red","meta":{"a":[1,2]}}"#,
    )
    .unwrap();
    assert_eq!(decoded, ServerMessage::say("hi", "bob"));
    let decoded: ClientMessage =
        decode_message(br#"{"reason":"done","type":"logout","at":3}"#).unwrap();
    assert_eq!(decoded, ClientMessage::Logout);
    let decoded: ClientMessage =
        decode_message(br#"{"type":"bye","text":"a server field"}"#).unwrap();
    assert_eq!(decoded, ClientMessage::Bye);
}

#[test]
fn unknown_type_decodes_to_unknown_in_both_directions() {
    let payload = br#"{"type":"typing","user":"ann","since":"2026-01-01T00:00:00Z"}"#;
    assert_eq!(
        decode_message::<ServerMessage>(payload).unwrap(),
        ServerMessage::Unknown
    );
    assert_eq!(
        decode_message::<ClientMessage>(payload).unwrap(),
        ClientMessage::Unknown
    );
    // A server type is unknown to a client decoder and the other way round.
    assert_eq!(
        decode_message::<ClientMessage>(br#"{"type":"welcome"}"#).unwrap(),
        ClientMessage::Unknown
    );
    assert_eq!(
        decode_message::<ServerMessage>(br#"{"type":"hello"}"#).unwrap(),
        ServerMessage::Unknown
    );
}

#[test]
fn missing_type_is_invalid() {
    assert_invalid_message::<ServerMessage>(r#"{"text":"hi","from":"bob"}"#);
    assert_invalid_message::<ClientMessage>(r#"{"text":"hi"}"#);
    assert_invalid_message::<ClientMessage>("{}");
}

#[test]
fn non_string_type_is_invalid() {
    assert_invalid_message::<ClientMessage>(r#"{"type":5}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":null}"#);
    assert_invalid_message::<ServerMessage>(r#"{"type":["say"]}"#);
}

#[test]
fn non_objects_are_invalid() {
    for payload in [
        "null",
        "42",
        r#""say""#,
        "true",
        "[]",
        // serde's internally tagged enums would take the tag from the first
        // element of an array; the protocol allows only objects.
        r#"["logout"]"#,
        r#"["say","hi"]"#,
        r#" ["bye"]"#,
    ] {
        assert_invalid_message::<ClientMessage>(payload);
        assert_invalid_message::<ServerMessage>(payload);
    }
}

#[test]
fn malformed_json_is_invalid() {
    for payload in [
        "",
        " ",
        r#"{"type":"bye""#,
        r#"{"type":"bye"} trailing"#,
        r#"{"type":"bye"}{"type":"bye"}"#,
        r#"{type:"bye"}"#,
    ] {
        assert_invalid_message::<ClientMessage>(payload);
    }
}

#[test]
fn whitespace_around_the_object_is_accepted() {
    assert_eq!(
        decode_message::<ClientMessage>(b" \r\n\t{\"type\":\"bye\"} \n").unwrap(),
        ClientMessage::Bye
    );
}

#[test]
fn wrong_field_types_are_invalid() {
    assert_invalid_message::<ServerMessage>(
        r#"{"type":"ask","id":"password","text":"Password:","secret":"yes"}"#,
    );
    assert_invalid_message::<ServerMessage>(
        r#"{"type":"welcome","server":"p","protocol":"1","auth":"ip"}"#,
    );
    assert_invalid_message::<ServerMessage>(
        r#"{"type":"welcome","server":"p","protocol":-1,"auth":"ip"}"#,
    );
    assert_invalid_message::<ServerMessage>(
        r#"{"type":"welcome","server":"p","protocol":1,"auth":"kerberos"}"#,
    );
    assert_invalid_message::<ServerMessage>(r#"{"type":"ready","user":7}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"say","text":["a"]}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"hello","token":1}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"answer","id":"name","text":null}"#);
}

#[test]
fn missing_required_fields_are_invalid() {
    assert_invalid_message::<ServerMessage>(r#"{"type":"say","text":"no sender"}"#);
    assert_invalid_message::<ServerMessage>(r#"{"type":"error","text":"no code"}"#);
    assert_invalid_message::<ServerMessage>(r#"{"type":"session","token":"t","user":"u"}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"answer","text":"no id"}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"say"}"#);
}

#[test]
fn invalid_utf8_in_a_message_is_invalid_utf8_not_lossy() {
    let payload = b"{\"type\":\"say\",\"text\":\"caf\xe9\"}";
    assert!(matches!(
        decode_message::<ClientMessage>(payload),
        Err(Error::InvalidUtf8(_))
    ));
    let mut wire = Vec::new();
    wire.send_frame(payload).unwrap();
    assert!(matches!(
        (&wire[..]).recv_message::<ClientMessage>(),
        Err(Error::InvalidUtf8(_))
    ));
}

#[test]
fn recv_message_skips_keep_alives() {
    let mut wire = Vec::new();
    wire.send_frame(b"").unwrap();
    wire.send_message(&ClientMessage::Bye).unwrap();
    wire.send_frame(b"").unwrap();
    wire.send_frame(b"").unwrap();
    let mut reader = &wire[..];
    assert_eq!(
        reader.recv_message::<ClientMessage>().unwrap(),
        Some(ClientMessage::Bye)
    );
    assert_eq!(reader.recv_message::<ClientMessage>().unwrap(), None);
}

#[test]
fn recv_message_goes_on_after_an_invalid_message() {
    let mut wire = Vec::new();
    wire.send_text("not json").unwrap();
    wire.send_message(&ClientMessage::Logout).unwrap();
    let mut reader = &wire[..];
    assert!(matches!(
        reader.recv_message::<ClientMessage>(),
        Err(Error::InvalidMessage(_))
    ));
    assert_eq!(
        reader.recv_message::<ClientMessage>().unwrap(),
        Some(ClientMessage::Logout)
    );
}

#[test]
fn message_over_the_maximum_is_refused_on_send_and_nothing_is_written() {
    let codec = FrameCodec::with_max_frame_len(16);
    let mut wire = Vec::new();
    let err = wire
        .send_message_with(
            &codec,
            &ClientMessage::Say {
                text: "more than sixteen bytes of JSON".into(),
                to: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { max: 16, .. }),
        "{err:?}"
    );
    assert!(wire.is_empty());
    // Exactly at the maximum is fine: {"type":"bye"} is 14 bytes.
    let codec = FrameCodec::with_max_frame_len(14);
    wire.send_message_with(&codec, &ClientMessage::Bye).unwrap();
    assert_eq!(&wire[..], b"\x00\x00\x00\x0e{\"type\":\"bye\"}");
}

#[test]
fn debug_output_redacts_tokens_and_answers() {
    let messages: Vec<Box<dyn std::fmt::Debug>> = vec![
        Box::new(ClientMessage::Answer {
            id: "password".into(),
            text: Secret::new("hunter22"),
        }),
        Box::new(ClientMessage::Hello {
            client: None,
            token: Some(Secret::new("hunter22")),
            since: None,
        }),
        Box::new(ServerMessage::Session {
            token: Secret::new("hunter22"),
            user: "ann".into(),
            expires_at: "2026-12-01T10:00:00Z".into(),
        }),
    ];
    for message in messages {
        let shown = format!("{message:?} {message:#?}");
        assert!(!shown.contains("hunter22"), "{shown}");
    }
    // The wire form, of course, carries the secret itself.
    let json = serde_json::to_value(ClientMessage::Answer {
        id: "password".into(),
        text: Secret::new("hunter22"),
    })
    .unwrap();
    assert_eq!(
        json,
        json!({"type": "answer", "id": "password", "text": "hunter22"})
    );
}

// --- The 1.1 additions (PROTOCOL.md sections 2, 3 and 5) ---

#[test]
fn room_say_with_seq_and_at_matches_the_spec() {
    let message = ServerMessage::Say {
        text: "hi".into(),
        from: "ada".into(),
        seq: Some(42),
        at: Some("2026-12-07T08:00:00Z".into()),
        to: None,
        replay: false,
    };
    assert_wire_form(
        r#"{"type":"say","text":"hi","from":"ada","seq":42,"at":"2026-12-07T08:00:00Z"}"#,
        message.clone(),
    );
    // The borrowed form used by the server encodes the same bytes.
    let mut by_serde = BytesMut::new();
    FrameCodec::new()
        .encode_message(&message, &mut by_serde)
        .unwrap();
    let mut borrowed = BytesMut::new();
    FrameCodec::new()
        .encode_room_say(
            &porter_wire::RoomSay {
                text: "hi",
                from: "ada",
                seq: Some(42),
                at: Some("2026-12-07T08:00:00Z"),
                to: None,
                replay: false,
            },
            &mut borrowed,
        )
        .unwrap();
    assert_eq!(borrowed, by_serde);
}

#[test]
fn private_and_replayed_says_match_the_spec() {
    assert_wire_form(
        r#"{"type":"say","text":"psst","from":"ada","at":"2026-12-07T08:00:00Z","to":"bob"}"#,
        ServerMessage::Say {
            text: "psst".into(),
            from: "ada".into(),
            seq: None,
            at: Some("2026-12-07T08:00:00Z".into()),
            to: Some("bob".into()),
            replay: false,
        },
    );
    assert_wire_form(
        r#"{"type":"say","text":"old","from":"ada","seq":7,"at":"2026-12-07T08:00:00Z","replay":true}"#,
        ServerMessage::Say {
            text: "old".into(),
            from: "ada".into(),
            seq: Some(7),
            at: Some("2026-12-07T08:00:00Z".into()),
            to: None,
            replay: true,
        },
    );
}

#[test]
fn who_event_and_recovered_match_the_spec() {
    assert_wire_form(
        r#"{"type":"who","users":["ada","bob"]}"#,
        ServerMessage::Who {
            users: vec!["ada".into(), "bob".into()],
        },
    );
    for (kind, name) in [
        (porter_wire::EventKind::Joined, "joined"),
        (porter_wire::EventKind::Left, "left"),
    ] {
        assert_wire_form(
            &format!(
                r#"{{"type":"event","kind":"{name}","user":"ada","at":"2026-12-07T08:00:00Z"}}"#
            ),
            ServerMessage::Event {
                kind,
                user: "ada".into(),
                at: "2026-12-07T08:00:00Z".into(),
            },
        );
    }
    assert_wire_form(
        r#"{"type":"recovered","complete":false,"missed":3}"#,
        ServerMessage::Recovered {
            complete: false,
            missed: 3,
        },
    );
}

#[test]
fn client_who_private_say_and_hello_since_match_the_spec() {
    assert_wire_form(r#"{"type":"who"}"#, ClientMessage::Who);
    assert_wire_form(
        r#"{"type":"say","text":"psst","to":"bob"}"#,
        ClientMessage::Say {
            text: "psst".into(),
            to: Some("bob".into()),
        },
    );
    assert_wire_form(
        r#"{"type":"hello","since":41}"#,
        ClientMessage::Hello {
            client: None,
            token: None,
            since: Some(41),
        },
    );
    assert_invalid_message::<ClientMessage>(r#"{"type":"hello","since":"41"}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"hello","since":-1}"#);
    assert_invalid_message::<ClientMessage>(r#"{"type":"say","text":"x","to":5}"#);
}

#[test]
fn the_1_1_error_codes_have_their_wire_names() {
    for (code, name) in [
        (ErrorCode::UnknownUser, "unknown_user"),
        (ErrorCode::Unavailable, "unavailable"),
        (ErrorCode::Revoked, "revoked"),
    ] {
        assert_eq!(code.as_str(), name);
        assert_wire_form(
            &format!(r#"{{"type":"error","code":"{name}","text":"t"}}"#),
            ServerMessage::error(code, "t"),
        );
    }
}
