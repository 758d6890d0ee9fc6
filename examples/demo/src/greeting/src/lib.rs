/// The line `hello` prints.
pub fn greeting(who: &str) -> String {
    format!("hello from mzbuild_async, {who}!")
}
