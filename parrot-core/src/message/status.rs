//! Status codes (RFC 3261 §21 and the extensions in common use).

use std::fmt;

/// A response status code, 100 to 699.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

impl StatusCode {
    /// A status code, if within 100..=699.
    pub const fn new(code: u16) -> Option<StatusCode> {
        if code >= 100 && code <= 699 {
            Some(StatusCode(code))
        } else {
            None
        }
    }

    /// The numeric value.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub const fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// 200 and above.
    pub const fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The class: 1 for 1xx, 2 for 2xx, and so on.
    pub const fn class(self) -> u16 {
        self.0 / 100
    }

    /// The reason phrase the RFCs give this code, or a generic one for its class.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            199 => "Early Dialog Terminated",
            200 => "OK",
            202 => "Accepted",
            204 => "No Notification",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            412 => "Conditional Request Failed",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            417 => "Unknown Resource-Priority",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            428 => "Use Identity Header",
            429 => "Provide Referrer Identity",
            433 => "Anonymity Disallowed",
            436 => "Bad Identity-Info",
            437 => "Unsupported Certificate",
            438 => "Invalid Identity Header",
            439 => "First Hop Lacks Outbound Support",
            440 => "Max-Breadth Exceeded",
            469 => "Bad Info Package",
            470 => "Consent Needed",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            489 => "Bad Event",
            491 => "Request Pending",
            493 => "Undecipherable",
            494 => "Security Agreement Required",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            555 => "Push Notification Service Not Supported",
            580 => "Precondition Failure",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            607 => "Unwanted",
            608 => "Rejected",
            c => match c / 100 {
                1 => "Provisional",
                2 => "Success",
                3 => "Redirection",
                4 => "Client Error",
                5 => "Server Error",
                _ => "Global Failure",
            },
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! consts {
    ($($name:ident = $code:literal;)*) => {
        impl StatusCode {
            $( #[doc = concat!("`", $code, "`")] pub const $name: StatusCode = StatusCode($code); )*
        }
    };
}

consts! {
    TRYING = 100; RINGING = 180; SESSION_PROGRESS = 183; OK = 200; ACCEPTED = 202;
    MOVED_TEMPORARILY = 302; BAD_REQUEST = 400; UNAUTHORIZED = 401; FORBIDDEN = 403;
    NOT_FOUND = 404; METHOD_NOT_ALLOWED = 405; PROXY_AUTHENTICATION_REQUIRED = 407;
    REQUEST_TIMEOUT = 408; UNSUPPORTED_MEDIA_TYPE = 415; UNSUPPORTED_URI_SCHEME = 416;
    BAD_EXTENSION = 420; TEMPORARILY_UNAVAILABLE = 480; CALL_DOES_NOT_EXIST = 481;
    LOOP_DETECTED = 482; TOO_MANY_HOPS = 483; BUSY_HERE = 486; REQUEST_TERMINATED = 487;
    NOT_ACCEPTABLE_HERE = 488; SERVER_INTERNAL_ERROR = 500; NOT_IMPLEMENTED = 501;
    SERVICE_UNAVAILABLE = 503; VERSION_NOT_SUPPORTED = 505; BUSY_EVERYWHERE = 600; DECLINE = 603;
}
