//! ChadThrottle's terminal UI, as pure logic: the app state ([`app::App`], its one
//! owner), the events it takes ([`event::Event`]), the effects key handling asks for
//! ([`event::Effect`], applied by the runner in the `chadthrottle` binary), and rendering
//! ([`view::draw`], a pure function of the state). Nothing here touches the kernel, so
//! every screen is tested through ratatui's `TestBackend`.

pub mod app;
pub mod dialog;
pub mod event;
pub mod keys;
pub mod sort;
pub mod view;

pub mod fixtures;

pub use app::App;
pub use event::{Effect, Event};
