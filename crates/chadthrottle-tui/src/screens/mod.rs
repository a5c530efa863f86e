//! One module per screen, each a pure function that draws its part of the frame from the
//! app state; `view` puts them together.

pub mod backends;
pub mod detail;
pub mod graph;
pub mod grouped_table;
pub mod help;
pub mod history;
pub mod rules_view;
pub mod status_bar;
pub mod table;
pub mod table_cells;
pub mod throttle;
