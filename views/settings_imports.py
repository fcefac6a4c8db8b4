"""Settings → Imports (owner): a Shopify orders export, a shipments CSV or a stock CSV. The file
is previewed (``preview=True``: what would change, the rows that would be skipped and why), then
imported with one call to the importer (``claims_core/adapters/importer.py``)."""
from __future__ import annotations

import streamlit as st

from claims_core import domain
from claims_core.adapters import importer
from views import ui

# what the owner picks -> (its name, the import: engine, data, progress -> report)
KINDS = {
    "orders": ("Shopify orders export",
               lambda engine, data, progress: importer.import_orders(engine, data, progress=progress)),
    "shipments": ("Shipments CSV",
                  lambda engine, data, progress: importer.import_shipments(engine, data)),
    "stock": ("Stock CSV (sku,on_hand)",
              lambda engine, data, progress: importer.import_stock(engine, data)),
}
PREVIEW = {"orders": importer.import_orders, "shipments": importer.import_shipments,
           "stock": importer.import_stock}


def show(engine, who) -> None:
    kind = st.radio("What are you importing?", list(KINDS), horizontal=True, key="s_import_kind",
                    format_func=lambda k: KINDS[k][0])
    upload = ui.file_picker("CSV file", ["csv"], key=f"s_import_{kind}")
    if upload is None:
        return
    name, data = upload
    try:
        preview = PREVIEW[kind](engine, data, preview=True)
    except importer.ImportFileError as e:
        st.error(f"{name}: {e.message} Nothing was imported.")
        return
    st.markdown(f"**Preview:** {preview.summary()}")
    if preview.skipped_rows:
        st.warning(f"{len(preview.skipped_rows)} rows will be skipped:")
        st.dataframe([{"Line": e.line, "Problem": e.reason} for e in preview.skipped_rows],
                     hide_index=True)
    for note in preview.notes:
        st.caption(note)
    if st.button(f"Import {name}", type="primary", key="s_import_go"):
        _import(engine, kind, data)


def _import(engine, kind: str, data: bytes) -> None:
    bar = st.progress(0.0, text="Importing…")
    try:
        report = KINDS[kind][1](engine, data, lambda x: bar.progress(x, text="Importing…"))
    except importer.ImportFileError as e:
        st.error(e.message)
        return
    bar.progress(1.0, text="Done")
    st.success(report.summary())
    if report.skipped_rows:
        st.download_button("Download the skipped rows", domain.write_csv(
            ["line", "reason"], [(e.line, e.reason) for e in report.skipped_rows]),
            file_name="skipped-rows.csv", mime="text/csv", key="s_import_err")
