//! The state machine walked with plain timestamps.

use super::*;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 50);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// RFC timing without jitter, so deadlines are exact.
fn timing() -> Timing {
    Timing {
        jitter: Duration::ZERO,
        min_renew_retransmit: s(5),
        ..Timing::default()
    }
}

fn reply(kind: ReplyKind, xid: u32) -> Reply {
    Reply {
        kind,
        xid,
        address: if kind == ReplyKind::Nak {
            Ipv4Addr::UNSPECIFIED
        } else {
            ADDR
        },
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        router: Some(SERVER),
        dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
        server: Some(SERVER),
        lease_secs: Some(100),
        t1_secs: None,
        t2_secs: None,
    }
}

fn sent(actions: &[Action]) -> Vec<Request> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn xid_of(state: &State) -> u32 {
    match state {
        State::Selecting { xid, .. }
        | State::Requesting { xid, .. }
        | State::Renewing { xid, .. }
        | State::Rebinding { xid, .. } => *xid,
        other => panic!("no transaction in {other:?}"),
    }
}

/// A client bound at t=10 (REQUEST sent at t=10) to a 100 s lease.
fn bound() -> Client {
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(10));
    let a = c.on_event(Event::Received(reply(ReplyKind::Ack, xid)), s(11));
    assert!(
        matches!(&a[..], [Action::Configure { previous: None, .. }]),
        "{a:?}"
    );
    assert_eq!(c.state().name(), "BOUND");
    c
}

#[test]
fn discover_offer_request_ack_binds_with_default_t1_t2() {
    let mut c = Client::new(timing(), 7);
    let a = c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    assert_eq!(sent(&a), vec![Request::Discover { xid }]);
    // An offer for another transaction is ignored.
    assert!(c
        .on_event(Event::Received(reply(ReplyKind::Offer, xid ^ 1)), s(1))
        .is_empty());
    let a = c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(1));
    assert_eq!(
        sent(&a),
        vec![Request::Select {
            xid,
            server: SERVER,
            address: ADDR
        }]
    );
    let a = c.on_event(Event::Received(reply(ReplyKind::Ack, xid)), s(2));
    let lease = c.state().lease().expect("bound").clone();
    assert_eq!(lease.address.to_string(), "198.51.100.50/24");
    assert_eq!(lease.gateway, Some(SERVER));
    assert_eq!(lease.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
    assert_eq!((lease.t1, lease.t2), (s(50), Duration::from_millis(87_500)));
    // Timers count from when the REQUEST was sent (t=1).
    assert_eq!(c.deadline(), Some(s(51)));
    assert_eq!(
        a,
        vec![Action::Configure {
            lease,
            previous: None
        }]
    );
    // A duplicate ACK changes nothing.
    assert!(c
        .on_event(Event::Received(reply(ReplyKind::Ack, xid)), s(3))
        .is_empty());
}

#[test]
fn discover_is_retransmitted_with_exponential_backoff_capped_at_64s() {
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    let mut now = s(0);
    let mut gaps = Vec::new();
    for _ in 0..7 {
        let next = c.deadline().expect("a resend is scheduled");
        assert!(c
            .on_event(Event::Timer, next - Duration::from_millis(1))
            .is_empty());
        gaps.push((next - now).as_secs());
        now = next;
        let a = c.on_event(Event::Timer, now);
        // The same transaction is retried.
        assert_eq!(sent(&a), vec![Request::Discover { xid }]);
    }
    assert_eq!(gaps, vec![4, 8, 16, 32, 64, 64, 64]);
}

#[test]
fn jitter_stays_within_one_second() {
    let mut c = Client::new(Timing::default(), 12345);
    for attempt in 0..6 {
        for _ in 0..50 {
            let d = c.backoff(attempt);
            let base = (4u64 << attempt).min(64) * 1000;
            let ms = d.as_millis() as u64;
            assert!(ms + 1000 >= base && ms <= base + 1000, "{attempt}: {ms}");
        }
    }
}

#[test]
fn requesting_gives_up_after_the_attempts_and_discovers_again() {
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(0));
    let mut requests = 1;
    loop {
        let t = c.deadline().unwrap();
        let a = c.on_event(Event::Timer, t);
        match sent(&a).as_slice() {
            [Request::Select { .. }] => requests += 1,
            [Request::Discover { xid: new }] => {
                assert_ne!(*new, xid, "a new transaction");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(requests, timing().request_attempts);
    assert_eq!(c.state().name(), "SELECTING");
}

#[test]
fn nak_in_requesting_goes_back_to_init_and_discovers_after_the_backoff() {
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(0));
    let a = c.on_event(Event::Received(reply(ReplyKind::Nak, xid)), s(1));
    assert!(a.is_empty(), "nothing was configured: {a:?}");
    assert_eq!(c.state(), &State::Init { until: Some(s(5)) });
    assert!(c.on_event(Event::Timer, s(4)).is_empty());
    let a = c.on_event(Event::Timer, s(5));
    assert!(matches!(sent(&a)[..], [Request::Discover { .. }]), "{a:?}");
}

#[test]
fn t1_renews_by_unicast_and_the_ack_extends_the_lease() {
    let mut c = bound();
    // Bound at t=10 (REQUEST sent then): T1 = 60, T2 = 97.5, expiry = 110.
    assert_eq!(c.deadline(), Some(s(60)));
    assert!(c.on_event(Event::Timer, s(59)).is_empty());
    let a = c.on_event(Event::Timer, s(60));
    let xid = xid_of(c.state());
    assert_eq!(
        sent(&a),
        vec![Request::Renew {
            xid,
            server: SERVER,
            address: ADDR
        }]
    );
    assert_eq!(c.state().name(), "RENEWING");
    // Resent after half the time to T2 (37.5 s / 2), at least 5 s.
    assert_eq!(c.deadline(), Some(Duration::from_millis(78_750)));
    let a = c.on_event(Event::Timer, Duration::from_millis(78_750));
    assert_eq!(sent(&a).len(), 1);
    assert_eq!(xid_of(c.state()), xid, "same transaction");
    let a = c.on_event(Event::Received(reply(ReplyKind::Ack, xid)), s(80));
    let [Action::Configure {
        lease,
        previous: Some(prev),
    }] = &a[..]
    else {
        panic!("{a:?}")
    };
    assert_eq!(prev.acquired, s(10));
    // The new lease counts from the first REQUEST of this renewal (t=60).
    assert_eq!(lease.acquired, s(60));
    assert_eq!(c.deadline(), Some(s(110)));
}

#[test]
fn t2_rebinds_by_broadcast_and_expiry_drops_the_lease() {
    let mut c = bound();
    c.on_event(Event::Timer, s(60));
    // Renewals go unanswered until T2 (97.5 s).
    let mut t = c.deadline().unwrap();
    while t < Duration::from_millis(97_500) {
        c.on_event(Event::Timer, t);
        assert_eq!(c.state().name(), "RENEWING");
        t = c.deadline().unwrap();
    }
    let a = c.on_event(Event::Timer, t);
    assert_eq!(c.state().name(), "REBINDING");
    assert!(
        matches!(sent(&a)[..], [Request::Rebind { address: ADDR, .. }]),
        "{a:?}"
    );
    assert_eq!(
        Request::Rebind {
            xid: 0,
            address: ADDR
        }
        .unicast_to(),
        None
    );
    // Unanswered until expiry at 110: then the lease goes and DISCOVER starts over.
    loop {
        let t = c.deadline().unwrap();
        assert!(t <= s(110));
        let a = c.on_event(Event::Timer, t);
        if t == s(110) {
            assert!(matches!(&a[0], Action::Deconfigure(l) if l.address.addr() == ADDR));
            assert!(matches!(sent(&a)[..], [Request::Discover { .. }]), "{a:?}");
            break;
        }
        assert!(matches!(sent(&a)[..], [Request::Rebind { .. }]), "{a:?}");
    }
    assert_eq!(c.state().name(), "SELECTING");
}

#[test]
fn nak_while_renewing_drops_the_lease() {
    let mut c = bound();
    c.on_event(Event::Timer, s(60));
    let xid = xid_of(c.state());
    let a = c.on_event(Event::Received(reply(ReplyKind::Nak, xid)), s(61));
    assert!(matches!(&a[..], [Action::Deconfigure(_)]), "{a:?}");
    assert!(matches!(c.state(), State::Init { until: Some(_) }));
}

#[test]
fn stop_releases_a_lease_and_nothing_otherwise() {
    let mut c = bound();
    let a = c.on_event(Event::Stop, s(20));
    assert!(
        matches!(
            &a[..],
            [
                Action::Send(Request::Release {
                    server: SERVER,
                    address: ADDR,
                    ..
                }),
                Action::Deconfigure(_)
            ]
        ),
        "{a:?}"
    );
    assert_eq!(c.state(), &State::Init { until: None });
    assert_eq!(c.deadline(), None);
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    assert!(c.on_event(Event::Stop, s(1)).is_empty());
}

#[test]
fn server_t1_t2_are_used_and_infinite_leases_never_renew() {
    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(0));
    let mut r = reply(ReplyKind::Ack, xid);
    r.t1_secs = Some(5);
    r.t2_secs = Some(8);
    c.on_event(Event::Received(r), s(0));
    assert_eq!(c.deadline(), Some(s(5)));
    let lease = c.state().lease().unwrap();
    assert_eq!(
        (lease.t1, lease.t2, lease.expires()),
        (s(5), s(8), Some(s(100)))
    );

    let mut c = Client::new(timing(), 7);
    c.on_event(Event::Start, s(0));
    let xid = xid_of(c.state());
    c.on_event(Event::Received(reply(ReplyKind::Offer, xid)), s(0));
    let mut r = reply(ReplyKind::Ack, xid);
    r.lease_secs = Some(u32::MAX);
    c.on_event(Event::Received(r), s(0));
    assert_eq!(c.state().name(), "BOUND");
    assert_eq!(c.deadline(), None);
}
