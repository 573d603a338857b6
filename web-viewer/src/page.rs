//! Writing results into the page: one element per line, found by id (created at the end of
//! `<main>` or `<body>` when `index.html` lacks it), and `data-state` on `<body>` for tests.

use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

/// `data-state` value while the page is still working.
pub const STATE_RUNNING: &str = "running";
/// `data-state` value once every line is written.
pub const STATE_DONE: &str = "done";
/// `data-state` value after a panic (its message is in the `status` line).
pub const STATE_FAILED: &str = "failed";

/// The document the lines go into.
pub struct Page {
    document: Document,
}

impl Page {
    /// The current document, or an error when there is none (e.g. inside a worker).
    pub fn current() -> Result<Self, JsValue> {
        let document = web_sys::window()
            .and_then(|window| window.document())
            .ok_or_else(|| JsValue::from_str("no document"))?;
        Ok(Self { document })
    }

    /// Replace the text of the line `id` and log it to the console.
    pub fn set_line(&self, id: &str, text: &str) {
        web_sys::console::log_1(&JsValue::from_str(&format!("{id}: {text}")));
        if let Some(element) = self.line_element(id) {
            element.set_text_content(Some(text));
        }
    }

    /// Set `data-state` on `<body>` (`running`, `done` or `failed`).
    pub fn set_state(&self, state: &str) {
        if let Some(body) = self.document.body() {
            // Setting a data attribute cannot fail for a valid name.
            let _ = body.set_attribute("data-state", state);
        }
    }

    fn line_element(&self, id: &str) -> Option<Element> {
        if let Some(element) = self.document.get_element_by_id(id) {
            return Some(element);
        }
        let parent: Element = match self.document.query_selector("main").ok().flatten() {
            Some(main) => main,
            None => self.document.body()?.into(),
        };
        let element = self.document.create_element("p").ok()?;
        element.set_id(id);
        parent.append_child(&element).ok()?;
        Some(element)
    }
}

/// Report panics on the console (with the stack) and in the page's `status` line, and mark the
/// page `failed`, so that neither a user nor a test waits for a result that will never come.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if let Ok(page) = Page::current() {
            page.set_line("status", &format!("failed: {info}"));
            page.set_state(STATE_FAILED);
        }
    }));
}
