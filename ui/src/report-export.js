// The script an exported report carries (built by vite.export.config.js into one file that
// cairn/collab/export.py inlines): it draws the report from the JSON the file embeds.  It
// makes no request: everything it shows is in the file.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { renderReport } from "./report.js";

const data = JSON.parse(document.getElementById("cairn-report-data").textContent);
const root = document.getElementById("report");
root.classList.add("report-export");
renderReport(root, data, { links: false });
