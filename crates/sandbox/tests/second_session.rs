//! Issue 11 part 3: `second-session` holds, with the figures its attacks leave.

use sealbridge_sandbox::{ChainSpec, find, run};
use serde_json::Value;

#[test]
fn a_second_session_is_refused_in_process_and_shows_as_a_fork_across_processes() {
    let s = find("second-session").unwrap();
    let r = run(s, &ChainSpec::Embedded, &|line| {
        eprintln!("[second-session] {line}")
    });
    let e = &r.evidence;
    assert!(r.held, "{e:#}");
    let checks = e["checks"].as_object().unwrap();
    assert_eq!(checks.len(), 9, "{checks:?}");
    assert!(checks.values().all(|v| v == &Value::Bool(true)));
    let refusal = e["same_process_refusal"].as_str().unwrap();
    assert!(
        refusal.contains(&format!(
            "restoring an older snapshot (record {})",
            e["older_snapshot_record"]
        )) && refusal.contains(&format!(
            "has sealed one at record {}",
            e["newest_snapshot_record"]
        )),
        "{refusal}"
    );
    assert_eq!(e["withheld_session"]["withheld_records"], 1);
    let (one, two) = (&e["branch_1_session"], &e["branch_2_session"]);
    assert_eq!(one["log_index"], two["log_index"]);
    assert_ne!(one["session_id"], two["session_id"]);
    assert_eq!(
        two["process_high_water"], 0,
        "a fresh process knows no earlier session"
    );
    assert_ne!(e["checkpoint_roots"][0], e["checkpoint_roots"][1]);
    assert_eq!(
        e["kept_against_branch_2"]["missing"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(e["branch_1_settle"], "settled");
    assert_ne!(e["branch_2_settle"], "settled");
}
