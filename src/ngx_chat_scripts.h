
/*
 * Copyright (C) ngx_chat authors
 */


/* written by src/lua/embed.pl from src/lua/: do not edit */


#ifndef _NGX_CHAT_SCRIPTS_H_INCLUDED_
#define _NGX_CHAT_SCRIPTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_CHAT_SCRIPT_CLAIM            0
#define NGX_CHAT_SCRIPT_KICK             1
#define NGX_CHAT_SCRIPT_REGISTRY         2
#define NGX_CHAT_SCRIPT_ROOM_JOIN        3
#define NGX_CHAT_SCRIPT_ROOM_LEAVE       4
#define NGX_CHAT_SCRIPT_ROOM_SWEEP       5
#define NGX_CHAT_SCRIPT_SEED             6
#define NGX_CHAT_SCRIPT_SEND             7
#define NGX_CHAT_SCRIPT_STREAM_TRIM      8
#define NGX_CHAT_SCRIPT_USER_GONE        9
#define NGX_CHAT_SCRIPT_USER_SEEN        10

#define NGX_CHAT_SCRIPTS          11


extern ngx_str_t  ngx_chat_scripts[];


#endif /* _NGX_CHAT_SCRIPTS_H_INCLUDED_ */
