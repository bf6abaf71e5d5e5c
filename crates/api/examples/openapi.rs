//! Print the node's OpenAPI document (`cargo run -p sealbridge-api --example openapi`).
fn main() {
    println!(
        "{}",
        serde_json::to_string_pretty(&sealbridge_api::openapi_json()).unwrap_or_default()
    );
}
