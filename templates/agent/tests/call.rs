//! The agent answers (through `parrot_core::testing`, no sockets), then real
//! calls over loopback: parrot-core's UAC speaks, the bridge streams it to
//! the echo service in each protocol, and the caller hears itself back.

use parrot_core::media::ws::OnLost;
use parrot_core::media::{AudioEvent, audio_stream, tone_present};
use parrot_core::testing;
use parrot_core::ua::Endpoint;
use std::sync::Arc;
use std::time::Duration;

use {{crate_name}}::{Config, Protocol};

use {{crate_name}}::{{module}};

fn config(service: &str, protocol: Protocol) -> Arc<Config> {
    Arc::new(Config {
        service: service.to_owned(),
        protocol,
        on_lost: OnLost::Silence,
    })
}

#[tokio::test]
async fn answers_calls_with_audio() {
    let mut agent = {{module}}::new(config("ws://127.0.0.1:9/media", Protocol::Twilio));
    let call = testing::call(
        &mut agent,
        testing::invite("alice", "agent").offer().build(),
    )
    .await;
    assert_eq!(call.code(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hears_itself_through_the_echo_service() {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = format!("ws://{}/media", echo.local_addr().unwrap());
    tokio::spawn({{crate_name}}::echo::serve(echo));
    for protocol in [Protocol::Twilio, Protocol::Jambonz] {
        let shared = config(&service, protocol);
        let server = Endpoint::builder()
            .udp("127.0.0.1:0".parse().unwrap())
            .handler(move || {{module}}::new(shared.clone()))
            .build()
            .await
            .unwrap();
        let addr = server
            .local_addr(parrot_core::transport::TransportKind::Udp)
            .unwrap();
        let client = Endpoint::builder()
            .udp("127.0.0.1:0".parse().unwrap())
            .build()
            .await
            .unwrap();
        let (media, mut heard, speak) = audio_stream();
        let mut call = client
            .dial(&format!("sip:agent@{addr}"))
            .unwrap()
            .media(media)
            .send()
            .await
            .unwrap();
        call.answered().await.unwrap();
        let tone: Vec<i16> = (0..8000)
            .map(|i| {
                ((f64::from(i) * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 10000.0) as i16
            })
            .collect();
        speak.send(&tone, 8000);
        let mut samples = Vec::new();
        let collect = async {
            while let Some(ev) = heard.recv().await {
                if let AudioEvent::Audio { samples: s, .. } = ev {
                    samples.extend(s);
                    if samples.len() >= 8000 * 3 {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(6), collect)
            .await
            .unwrap();
        let start = samples
            .iter()
            .position(|s| s.unsigned_abs() > 2000)
            .unwrap_or_else(|| panic!("{protocol:?}: the caller heard nothing back"));
        let end = (start + 4000).min(samples.len());
        assert!(
            tone_present(&samples[start..end], 440.0, 8000, 0.5),
            "{protocol:?}: the caller's 440 Hz came back"
        );
        call.hangup().await.unwrap();
        client.shutdown(Duration::from_secs(1)).await;
        server.shutdown(Duration::from_secs(1)).await;
    }
}
