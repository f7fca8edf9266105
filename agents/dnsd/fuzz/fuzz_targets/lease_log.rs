//! The lease log (`leases.jsonl`), as a crash or a disk error may leave it: replayed
//! line by line (a torn last line dropped, any other bad line an error). Whatever
//! replays must survive a write-and-replay round trip unchanged — that is what
//! compaction does to it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("leases.jsonl");
    let Ok(db) = dnsd::dhcp::lease::parse_log(path, data) else {
        return;
    };
    let mut text = Vec::new();
    for lease in db.values() {
        text.extend(serde_json::to_vec(lease).unwrap());
        text.push(b'\n');
    }
    let again = dnsd::dhcp::lease::parse_log(path, &text).unwrap();
    assert_eq!(db, again);
});
