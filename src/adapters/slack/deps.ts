// What the Slack listeners share.
import type { App } from '@slack/bolt';
import type { BotCore } from '../../core/types.ts';
import type { Logger } from '../../log.ts';
import type { SlackAdmins } from './admins.ts';
import type { JobMessages } from './job-messages.ts';

export interface SlackDeps {
  core: BotCore;
  client: App['client'];
  admins: SlackAdmins;
  jobs: JobMessages;
  log: Logger;
}
