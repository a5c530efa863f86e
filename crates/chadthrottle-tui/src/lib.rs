//! ChadThrottle's terminal UI, as pure logic: the app state ([`app::App`], its one
//! owner), the events it takes ([`event::Event`], through [`App::handle`] in `dispatch`),
//! the effects key handling asks for ([`event::Effect`], applied by the runner in the
//! `chadthrottle` binary), and rendering ([`view::draw`], a pure function of the state).
//! Nothing here touches the kernel, so every screen is tested through ratatui's
//! `TestBackend`.
//!
//! Layers, each importing only those below it: `target_choice`, `history` → `event`,
//! `sort`, `dialog`, `theme` → `grouping`, `mode` → `layout` → `app` → `group_keys`,
//! `rules_keys`, `history_keys` → `keys`, `screens` → `dispatch`, `view`.

pub mod app;
pub mod dialog;
mod dispatch;
pub mod event;
mod group_keys;
pub mod grouping;
pub mod history;
mod history_keys;
pub mod keys;
pub mod layout;
pub mod mode;
mod rules_keys;
mod screens;
pub mod sort;
pub mod target_choice;
mod theme;
pub mod view;

pub mod fixtures;

pub use app::App;
pub use event::{Effect, Event};
