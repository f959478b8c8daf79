//! The SDP parser (RFC 4566 §5, §9 grammar), line by line. It never panics: every field is
//! checked before use and errors carry the line number.

use super::error::{SdpError, SdpErrorKind};
use super::{
    Attribute, Connection, Line, MAX_ATTRIBUTES, MAX_FORMATS, MAX_MEDIA, MediaDescription,
    MediaKind, Origin, SessionDescription, Timing, is_rtp_protocol, media_slot, parse_payload_type,
    session_slot,
};

/// One input line: its number, the offset of its start, the type letter and the value.
struct Field<'a> {
    number: usize,
    offset: usize,
    kind: char,
    value: &'a str,
}

impl Field<'_> {
    fn error(&self, kind: SdpErrorKind) -> SdpError {
        SdpError::new(kind, self.number, self.offset)
    }
}

/// Splits the input into fields; CRLF or bare LF end a line, and blank lines are skipped
/// (many generators end the body with an extra line break).
fn fields(input: &[u8]) -> impl Iterator<Item = Result<Field<'_>, SdpError>> {
    let mut offset = 0;
    input
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(index, raw)| {
            let start = offset;
            offset += raw.len() + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                return None;
            }
            let number = index + 1;
            let err = |kind| Some(Err(SdpError::new(kind, number, start)));
            // <type>=<value>: one letter, '=', no whitespace around it (RFC 4566 §5).
            let (&letter, rest) = raw.split_first()?;
            if !letter.is_ascii_alphabetic() || rest.first() != Some(&b'=') {
                return err(SdpErrorKind::BadLine);
            }
            let Ok(value) = std::str::from_utf8(&rest[1..]) else {
                return err(SdpErrorKind::NotUtf8);
            };
            Some(Ok(Field {
                number,
                offset: start,
                kind: char::from(letter),
                value,
            }))
        })
}

pub(super) fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    let mut fields = fields(input);
    let end = |kind| SdpError::new(kind, input.split(|&b| b == b'\n').count(), input.len());

    // v=, o=, s= come first and in this order (RFC 4566 §5).
    let v = fields.next().ok_or_else(|| end(SdpErrorKind::Empty))??;
    if v.kind != 'v' {
        return Err(v.error(SdpErrorKind::MissingVersion));
    }
    let version = v
        .value
        .parse()
        .map_err(|_| v.error(SdpErrorKind::BadVersion))?;

    let o = fields
        .next()
        .ok_or_else(|| end(SdpErrorKind::MissingOrigin))??;
    if o.kind != 'o' {
        return Err(o.error(SdpErrorKind::MissingOrigin));
    }
    let origin = parse_origin(o.value).ok_or_else(|| o.error(SdpErrorKind::BadOrigin))?;

    let s = fields
        .next()
        .ok_or_else(|| end(SdpErrorKind::MissingSessionName))??;
    if s.kind != 's' {
        return Err(s.error(SdpErrorKind::MissingSessionName));
    }

    let mut sdp = SessionDescription {
        version,
        origin,
        session_name: s.value.to_owned(),
        connection: None,
        timing: Vec::new(),
        attributes: Vec::new(),
        other_lines: Vec::new(),
        media: Vec::new(),
    };

    // Counted as they come, so that a hostile body costs at most the caps (the answer
    // reads formats × attributes).
    let mut attributes = 0;
    for field in fields {
        let field = field?;
        match field.kind {
            'v' | 'o' | 's' => return Err(field.error(SdpErrorKind::Misplaced(field.kind))),
            'm' if sdp.media.len() == MAX_MEDIA => {
                return Err(field.error(SdpErrorKind::TooManyMedia));
            }
            'm' => sdp.media.push(parse_media(&field)?),
            'a' if attributes == MAX_ATTRIBUTES => {
                return Err(field.error(SdpErrorKind::TooManyAttributes));
            }
            _ => match sdp.media.last_mut() {
                Some(media) => media_field(media, &field)?,
                None => session_field(&mut sdp, &field)?,
            },
        }
        attributes += usize::from(field.kind == 'a');
    }

    // Lenient: some user agents omit t=; read it as the permanent session SIP uses.
    if sdp.timing.is_empty() {
        sdp.timing.push(Timing::new(0, 0));
    }
    // Lines kept verbatim are stored in the order the serializer writes them, so that
    // parse → serialize → parse is the identity even for out-of-order input.
    sdp.other_lines.sort_by_key(|l| session_slot(l.kind));
    for media in &mut sdp.media {
        media.other_lines.sort_by_key(|l| media_slot(l.kind));
    }
    Ok(sdp)
}

fn session_field(sdp: &mut SessionDescription, field: &Field<'_>) -> Result<(), SdpError> {
    match field.kind {
        'c' if sdp.connection.is_none() => {
            sdp.connection = Some(parse_connection(field)?);
        }
        't' => {
            let mut parts = field.value.split_ascii_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(start)), Some(Ok(stop)), None) => {
                    sdp.timing.push(Timing::new(start, stop))
                }
                _ => return Err(field.error(SdpErrorKind::BadTiming)),
            }
        }
        'r' => match sdp.timing.last_mut() {
            Some(t) => t.repeats.push(field.value.to_owned()),
            None => return Err(field.error(SdpErrorKind::Misplaced('r'))),
        },
        'a' => sdp.attributes.push(parse_attribute(field)?),
        _ => sdp.other_lines.push(Line::new(field.kind, field.value)),
    }
    Ok(())
}

fn media_field(media: &mut MediaDescription, field: &Field<'_>) -> Result<(), SdpError> {
    match field.kind {
        'c' if media.connection.is_none() => media.connection = Some(parse_connection(field)?),
        // Further c= lines (layered multicast, RFC 4566 §5.7) are kept verbatim.
        'c' => {
            parse_connection(field)?;
            media.other_lines.push(Line::new('c', field.value));
        }
        't' | 'r' | 'z' => return Err(field.error(SdpErrorKind::Misplaced(field.kind))),
        'a' => media.attributes.push(parse_attribute(field)?),
        _ => media.other_lines.push(Line::new(field.kind, field.value)),
    }
    Ok(())
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
fn parse_origin(value: &str) -> Option<Origin> {
    let mut parts = value.split_ascii_whitespace();
    let origin = Origin {
        username: parts.next()?.to_owned(),
        session_id: parts.next()?.to_owned(),
        session_version: parts.next()?.parse().ok()?,
        nettype: parts.next()?.to_owned(),
        addrtype: parts.next()?.to_owned(),
        address: parts.next()?.to_owned(),
    };
    parts.next().is_none().then_some(origin)
}

/// `c=<nettype> <addrtype> <connection-address>`
fn parse_connection(field: &Field<'_>) -> Result<Connection, SdpError> {
    let mut parts = field.value.split_ascii_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(nettype), Some(addrtype), Some(address), None) => Ok(Connection {
            nettype: nettype.to_owned(),
            addrtype: addrtype.to_owned(),
            address: address.to_owned(),
        }),
        _ => Err(field.error(SdpErrorKind::BadConnection)),
    }
}

/// `a=<attribute>` or `a=<attribute>:<value>`
fn parse_attribute(field: &Field<'_>) -> Result<Attribute, SdpError> {
    let (name, value) = match field.value.split_once(':') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (field.value, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(field.error(SdpErrorKind::BadAttribute));
    }
    Ok(Attribute {
        name: name.to_owned(),
        value,
    })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`
fn parse_media(field: &Field<'_>) -> Result<MediaDescription, SdpError> {
    let mut parts = field.value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(protocol)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(field.error(SdpErrorKind::BadMedia));
    };
    let bad_port = || field.error(SdpErrorKind::BadPort);
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (port, Some(parse_u16(count).ok_or_else(bad_port)?)),
        None => (port, None),
    };
    let port = parse_u16(port).ok_or_else(bad_port)?;
    let mut formats: Vec<String> = Vec::new();
    for format in parts {
        if formats.len() == MAX_FORMATS {
            return Err(field.error(SdpErrorKind::TooManyFormats));
        }
        formats.push(format.to_owned());
    }
    // At least one format (RFC 4566 §5.14), except on a disabled stream where some agents
    // leave the list empty.
    if formats.is_empty() && port != 0 {
        return Err(field.error(SdpErrorKind::BadMedia));
    }
    if is_rtp_protocol(protocol) && formats.iter().any(|f| parse_payload_type(f).is_none()) {
        return Err(field.error(SdpErrorKind::BadFormat));
    }
    let mut media = MediaDescription::new(MediaKind::from_token(kind), port, protocol);
    media.port_count = port_count;
    media.formats = formats;
    Ok(media)
}

/// A decimal u16 with digits only (no sign, no spaces).
fn parse_u16(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
