// Debian's chromium, headless, driven by playwright-core: the dashboard tests' browser.
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const NO_CHROMIUM = !existsSync(CHROMIUM) && 'needs Debian chromium (.ci/run installs it)';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Opens `url` in a fresh profile (`profile`, a directory the test removes); console errors and page errors land in `errors`. */
export async function openPage(profile: string, url: string, errors: string[]): Promise<{ browser: BrowserContext; page: Page }> {
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: FLAGS, viewport: { width: 1280, height: 800 } });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(url);
  return { browser, page };
}
