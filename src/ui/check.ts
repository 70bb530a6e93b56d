// The check renderer: Linkerd's layout (category over dashes, √ ‼ × per check, the error and a hint
// link indented under a failure, a status line) or its JSON shape.
import { Chalk, type ChalkInstance } from 'chalk';
import type { CheckReport, CheckResult } from '../check/runner.js';

const plain = new Chalk({ level: 0 });

export function categoryHeader(name: string): string {
  return `${name}\n${'-'.repeat(name.length)}\n`;
}

export function resultLines(r: CheckResult, c: ChalkInstance = plain): string {
  const mark = r.result === 'success' ? c.green('√') : r.result === 'warning' ? c.yellow('‼') : c.red('×');
  let s = `${mark} ${r.description}\n`;
  if (r.result !== 'success') {
    for (const line of (r.error ?? '').split('\n')) s += `    ${line}\n`;
    s += `    see ${r.hint} for hints\n`;
  }
  return s;
}

export function statusLine(success: boolean, c: ChalkInstance = plain): string {
  return `Status check results are ${success ? c.green('√') : c.red('×')}\n`;
}

/** The whole report as text; a command streaming results prints the same pieces as they come. */
export function renderText(report: CheckReport, c: ChalkInstance = plain): string {
  let s = '';
  for (const cat of report.categories) {
    s += categoryHeader(cat.categoryName);
    for (const r of cat.checks) s += resultLines(r, c);
    s += '\n';
  }
  return s + statusLine(report.success, c);
}

/** Linkerd's -o json shape: {success, categories: [{categoryName, checks: [{description, hint, error, result}]}]}. */
export function renderJson(report: CheckReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
